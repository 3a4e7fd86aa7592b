"""Benchmark commands (not tests): each prints figures measured on the machine it runs on.

- `python -m bertflow.bench.data_bench`: the data stages (prepare_corpus, train_tokenizer,
  tokenize_corpus) against a run_mlm.py-style `datasets.map` baseline, each in a fresh process.
"""
