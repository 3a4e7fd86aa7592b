"""Ours (the stage's defaults, reduce_vocab on; length grouping on and off) against the Trainer
(run_glue.py style) on the same SST-2 files, model and seeds 1-5: the benchmark's setup (first 4,000 training
sentences, all 872 dev sentences, tiny random-init model with 30,522 embedding rows, 2 epochs,
lr 1e-3), one process, each run after the other.

    OMP_NUM_THREADS=1 PYTHONPATH=src python docs/results/cpu-finetune-bench/trainer_seeds.py

finetune_bench sets up a new tokenizer and model per invocation (not bit-reproducible across
invocations), so accuracies from separate invocations differ by more than the seed; here all
runs share one setup. Prints one JSON line per run, then each side's accuracies, mean and stdev.
"""

import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.finetune_bench import parse_args, prepare_task, run_ours, run_trainer, task_settings

torch.set_num_threads(1)
SEEDS = (1, 2, 3, 4, 5)
SIDES = {"Trainer (run_glue.py)": ("baseline", {}), "ours, group_by_length on": ("ours", {"group_by_length": True}),
         "ours, group_by_length off": ("ours", {"group_by_length": False})}
args = parse_args(["--tasks", "sst2", "--sst2-dir", "/work/shared/data/sst2", "--lr", "1e-3", "--epochs", "2",
                   *sys.argv[1:]])
accuracy: dict[str, list[float]] = {name: [] for name in SIDES}
with tempfile.TemporaryDirectory() as tmp:
    files = prepare_task("sst2", args, Path(tmp))
    for seed in SEEDS:
        for name, (side, change) in SIDES.items():
            spec = {"task": "sst2", "device": "cpu", "seed": seed, "settings": {**task_settings("sst2", args), **change},
                    **files}
            result = (run_trainer if side == "baseline" else run_ours)(spec)
            accuracy[name].append(result["metrics"]["accuracy"])
            print(json.dumps({"side": name, "seed": seed, "accuracy": result["metrics"]["accuracy"],
                              "final_train_loss": result["final_train_loss"],
                              "train_examples_per_s": round(result["train_examples_per_s"], 1)}), flush=True)
for name, values in accuracy.items():
    print(json.dumps({"side": name, "accuracy_per_seed": values, "mean": round(statistics.fmean(values), 3),
                      "stdev": round(statistics.stdev(values), 3)}), flush=True)
