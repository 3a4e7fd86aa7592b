"""Benchmark commands (not tests, not stages): each prints figures measured on the machine it runs
on, mostly comparing our stages with the Hugging Face baselines users run (see docs/performance.md).
The stages never import this package.

- `python -m bertflow.bench.train_bench`: the pretraining step against Trainer + the MLM collator,
  and each of our levers switched alone.
- `python -m bertflow.bench.data_bench`: the data stages (prepare_corpus, train_tokenizer,
  tokenize_corpus) against a run_mlm.py-style `datasets.map` baseline, each in a fresh process.
- `python -m bertflow.bench.finetune_bench`: SST-2 and SQuAD fine-tuning against run_glue.py- and
  run_qa.py-style Trainer runs, as interleaved pairs in fresh processes.
- `python -m bertflow.bench.scaling`: a run's per-stage wall time from the rules' benchmark files.
- `python -m bertflow.bench.pretrain_startup`: pretraining start-up time against corpus size.
- `python -m bertflow.bench.latency_monotonicity`: how many timed passes the inference benchmark needs.
- `python -m bertflow.bench.launch_check`: the GPU (NCCL) path of the distributed launcher.
- `python -m bertflow.bench.size_sweep`: model presets pretrained at one time budget, the validation
  perplexity each reaches (which model size a GPU budget favours).
- `python -m bertflow.bench.finetune_sweep`: a small fine-tuning grid, the dev metric per setting and
  the best per task.
- `bertflow.bench.pairs`: interleaved A/B runs in fresh processes and their ratio summary.
- `bertflow.bench.sweep`: what the two sweeps share (the workflow's config, one stage run per
  setting in a fresh process, reruns that skip finished runs).
"""
