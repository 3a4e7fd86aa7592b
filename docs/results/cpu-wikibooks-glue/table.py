"""The GLUE dev table of docs/finetune.md from a run's results folder (mean ± std over seeds).

    python docs/results/cpu-wikibooks-glue/table.py results/cpu_wikibooks
"""

import json
import statistics
import sys
from pathlib import Path

TASKS = [("cola", ["matthews_correlation"]), ("sst2", ["accuracy"]), ("mrpc", ["f1", "accuracy"]),
         ("stsb", ["pearson", "spearmanr"]), ("rte", ["accuracy"]), ("wnli", ["accuracy"])]


def cell(summary: dict, keys: list[str]) -> str:
    return "/".join(f"{summary['mean'][k]:.1f}" for k in keys) + " ± " + "/".join(
        f"{summary['std'][k]:.1f}" for k in keys)


def main(results: Path) -> None:
    summaries = {task: json.loads((results / "finetune" / task / "pretrained" / "summary.json").read_text())
                 for task, _ in TASKS}
    # The GLUE score as the leaderboard computes it: each task's metrics averaged, then the tasks.
    per_seed = []
    for seed in summaries["sst2"]["per_seed"]:
        per_seed.append(statistics.fmean(
            statistics.fmean(summaries[task]["per_seed"][seed][k] for k in keys) for task, keys in TASKS))
    score = f"{statistics.fmean(per_seed):.1f} ± {statistics.stdev(per_seed) if len(per_seed) > 1 else 0:.1f}"
    print("| model | Score | " + " | ".join(task for task, _ in TASKS) + " |")
    print("|---|---|" + "---|" * len(TASKS))
    print(f"| this run (dev) | {score} | " + " | ".join(cell(summaries[t], k) for t, k in TASKS) + " |")
    for task, _ in TASKS:
        s = summaries[task]
        print(f"{task}: seeds {s['seeds']}, per seed " + json.dumps(
            {seed: {k: round(v[k], 2) for k in dict(TASKS)[task]} for seed, v in s["per_seed"].items()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
