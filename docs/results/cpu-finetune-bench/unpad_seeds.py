"""Does unpadding change what fine-tuning learns? Our stage with `unpad: false` (transformers'
padded forward) and `unpad: true` (the default) on the same files, model and seeds, paired.

SST-2: the benchmark's setup (first 4,000 training sentences, all 872 dev sentences, tiny
random-init model with 30,522 embedding rows, 2 epochs, lr 1e-3), seeds 1-10.
SQuAD: the benchmark's setup (40-article dev part split by article, first 800 training and 400
evaluation questions, 1 epoch, lr 1e-4), seeds 1-3; a random-init tiny model learns little QA
here, so its training losses are compared too.

    OMP_NUM_THREADS=1 PYTHONPATH=src python docs/results/cpu-finetune-bench/unpad_seeds.py [sst2] [squad]

Prints one JSON line per run and, per task, the per-seed differences (unpadded - padded) with
their mean and standard error. Training seconds are for information only: runs go one after the
other (finetune_bench measures speed).
"""

import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.finetune_bench import parse_args, prepare_task, task_settings
from bertflow.finetune import finetune

torch.set_num_threads(1)
SETUPS = {
    "sst2": (range(1, 11), "accuracy", ["--lr", "1e-3", "--epochs", "2"]),
    "squad": (range(1, 4), "f1", ["--train-samples", "squad=800", "--eval-samples", "squad=400"]),
}


def paired_summary(task: str, metric: str, rows: list[dict]) -> dict:
    by_side = {side: [r for r in rows if r["unpad"] is side] for side in (False, True)}
    summary = {"task": task}
    for key in (metric, "final_train_loss"):
        differences = [b[key] - a[key] for a, b in zip(by_side[False], by_side[True])]
        summary[key] = {"padded_mean": statistics.fmean(r[key] for r in by_side[False]),
                        "unpadded_mean": statistics.fmean(r[key] for r in by_side[True]),
                        "differences": [round(d, 4) for d in differences],
                        "mean_difference": statistics.fmean(differences),
                        "standard_error": statistics.stdev(differences) / len(differences) ** 0.5}
    summary["train_seconds"] = {str(side): statistics.median(r["train_seconds"] for r in by_side[side])
                                for side in (False, True)}
    return summary


for task in [name for name in SETUPS if name in sys.argv[1:]] or list(SETUPS):
    seeds, metric, options = SETUPS[task]
    args = parse_args(["--tasks", task, "--sst2-dir", "/work/shared/data/sst2", "--squad-file",
                       "/work/shared/data/squad/squad-v1.1-dev-part1.json", "--seed", "1", *options])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = prepare_task(task, args, Path(tmp))
        for seed in seeds:
            for unpad in (False, True):
                r = finetune(task=task, out_dir=str(Path(tmp, f"seed{seed}-{unpad}")), seed=seed, device="cpu",
                             settings={**task_settings(task, args), "unpad": unpad}, **files)
                row = {"task": task, "seed": seed, "unpad": unpad, metric: r[metric],
                       "final_train_loss": r["epochs"][-1]["train_loss"],
                       "train_seconds": round(sum(e["train_seconds"] for e in r["epochs"]), 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps(paired_summary(task, metric, rows)), flush=True)
