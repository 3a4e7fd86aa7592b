"""Benchmark commands (not tests, not stages): each prints figures measured on the machine it runs
on, mostly comparing our stages with the Hugging Face baselines users run (see docs/performance.md).
Run from the repository root as `python -m benchmarks.NAME`, or as `python benchmarks/NAME.py`.
They import `bertflow`; `bertflow` never imports them.

- `python -m benchmarks.train_bench`: the pretraining step against Trainer + the MLM collator,
  and each of our levers switched alone.
- `python -m benchmarks.data_bench`: the data stages (prepare_corpus, train_tokenizer,
  tokenize_corpus) against a run_mlm.py-style `datasets.map` baseline, each in a fresh process.
- `python -m benchmarks.finetune_bench`: SST-2 and SQuAD fine-tuning against run_glue.py- and
  run_qa.py-style Trainer runs, as interleaved pairs in fresh processes, per encoder family
  (`--families`).
- `benchmarks.families`: random-weight models of every encoder family the workflow fine-tunes,
  each with a tokenizer of its own kind trained locally (also the tests' tiny models).
- `python -m benchmarks.scaling`: a run's per-stage wall time from the rules' benchmark files.
- `python -m benchmarks.pretrain_startup`: pretraining start-up time against corpus size.
- `python -m benchmarks.latency_monotonicity`: how many timed passes the inference benchmark needs.
- `python -m benchmarks.launch_check`: the GPU (NCCL) path of the distributed launcher.
- `python -m benchmarks.size_sweep`: model presets pretrained at one time budget, the validation
  perplexity each reaches (which model size a GPU budget favours).
- `python -m benchmarks.finetune_sweep`: a small fine-tuning grid, the dev metric per setting and
  the best per task.
- `benchmarks.pairs`: interleaved A/B runs in fresh processes and their ratio summary.
- `benchmarks.sweep`: what the two sweeps share (the workflow's config, one stage run per
  setting in a fresh process, reruns that skip finished runs).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: what holds this package


def child_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) with the repository first on PYTHONPATH, so that a fresh
    `python -m benchmarks.NAME` finds this package whatever its working directory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env
