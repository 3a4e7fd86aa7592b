"""Do the speed settings change what SST-2 fine-tuning learns? Our stage with each setting on the
same files, model and seeds (the benchmark's setup: first 4,000 training sentences, all 872 dev
sentences, tiny random-init model with 30,522 embedding rows, 2 epochs, lr 1e-3), seeds 1-5.

    OMP_NUM_THREADS=1 PYTHONPATH=src python docs/results/cpu-finetune-bench/seeds_check.py

Prints one JSON line per run (accuracy, per-epoch training loss, a digest of the predictions) and,
per setting, the mean accuracy and whether its runs match the `defaults` runs exactly. Training
seconds are for information only: runs go one after the other, not as interleaved pairs
(finetune_bench measures speed).
"""

import hashlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.finetune_bench import parse_args, prepare_task, task_settings
from bertflow.finetune import finetune

torch.set_num_threads(1)
SEEDS = (1, 2, 3, 4, 5)
# "defaults": the stage's defaults when this was measured (reduce_vocab was off then; now it is on).
VARIANTS = {"defaults": {"reduce_vocab": False}, "reduce_vocab": {"reduce_vocab": True},
            "group_by_length": {"group_by_length": True, "reduce_vocab": False},
            "group_by_length + reduce_vocab": {"group_by_length": True, "reduce_vocab": True}}
args = parse_args(["--tasks", "sst2", "--sst2-dir", "/work/shared/data/sst2", "--lr", "1e-3", "--epochs", "2",
                   "--seed", "1", *sys.argv[1:]])
results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
with tempfile.TemporaryDirectory() as tmp:
    files = prepare_task("sst2", args, Path(tmp))
    for seed in SEEDS:
        for name, change in VARIANTS.items():
            out = Path(tmp, f"seed{seed}-{len(results[name])}-{name.replace(' ', '')}")
            r = finetune(task="sst2", out_dir=str(out), seed=seed, device="cpu",
                         settings={**task_settings("sst2", args), **change}, **files)
            predictions = [p["prediction"] for p in json.loads((out / "predictions.json").read_text())]
            row = {"setting": name, "seed": seed, "accuracy": r["accuracy"],
                   "train_loss": [round(e["train_loss"], 6) for e in r["epochs"]],
                   "predictions_sha256": hashlib.sha256(bytes(predictions)).hexdigest()[:16],
                   "train_seconds": round(sum(e["train_seconds"] for e in r["epochs"]), 1),
                   **r.get("vocab_reduction", {})}
            results[name].append(row)
            print(json.dumps(row), flush=True)
for name, rows in results.items():
    same = [a["predictions_sha256"] == b["predictions_sha256"] and a["train_loss"] == b["train_loss"]
            for a, b in zip(rows, results["defaults"])]
    accuracy = [r["accuracy"] for r in rows]
    print(json.dumps({"setting": name, "accuracy_per_seed": accuracy, "mean": round(statistics.fmean(accuracy), 3),
                      "stdev": round(statistics.stdev(accuracy), 3),
                      "identical_to_defaults_per_seed": same}), flush=True)
