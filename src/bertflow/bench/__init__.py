"""Benchmark commands (not tests): each prints figures measured on the machine it runs on, comparing
our stages with the Hugging Face baselines users run (see docs/performance.md).

- `python -m bertflow.bench.data_bench`: the data stages (prepare_corpus, train_tokenizer,
  tokenize_corpus) against a run_mlm.py-style `datasets.map` baseline, each in a fresh process.
- `python -m bertflow.bench.finetune_bench`: SST-2 and SQuAD fine-tuning against run_glue.py- and
  run_qa.py-style Trainer runs, as interleaved pairs in fresh processes.
"""
