"""Accuracy of ours and the Trainer over seeds, per family: the table of this folder's README.

    python docs/results/cpu-finetune-families/seeds/seed_table.py docs/results/cpu-finetune-families/seeds

reads every seed*/finetune_bench.json below the folder (one pair per family and seed) and prints,
per family, each seed's accuracy of both sides, the mean and standard deviation of ours - Trainer
over the seeds, its standard error, and how many runs stayed at the majority class."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

MAJORITY = 50.92  # 444 of 872 SST-2 dev sentences are positive


def accuracies(folder: Path) -> dict[str, dict[int, dict[str, float]]]:
    table: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for path in sorted(folder.glob("seed*/finetune_bench.json")):
        data = json.loads(path.read_text())
        seed = data["args"]["seed"]
        for run in data["runs"]:
            table[run["family"]].setdefault(seed, {})[run["side"]] = run["metrics"]["accuracy"]
    return table


def main(folder: str) -> None:
    table = accuracies(Path(folder))
    print("| family | seeds | Trainer accuracy per seed | ours per seed | ours - Trainer, mean ± std (s.e.) | at the majority class, Trainer / ours |")
    print("|---|---|---|---|---|---|")
    for family, by_seed in table.items():
        seeds = sorted(s for s, sides in by_seed.items() if {"baseline", "ours"} <= sides.keys())
        trainer = [by_seed[s]["baseline"] for s in seeds]
        ours = [by_seed[s]["ours"] for s in seeds]
        if len(seeds) < 2:
            continue
        gaps = [o - t for o, t in zip(ours, trainer)]
        mean, std = statistics.mean(gaps), statistics.stdev(gaps)
        collapsed = [sum(abs(a - MAJORITY) < 0.01 for a in side) for side in (trainer, ours)]
        print(f"| {family} | {seeds[0]}-{seeds[-1]} | {' '.join(f'{a:.1f}' for a in trainer)} | "
              f"{' '.join(f'{a:.1f}' for a in ours)} | {mean:+.1f} ± {std:.1f} ({std / len(gaps) ** 0.5:.1f}) | "
              f"{collapsed[0]} / {collapsed[1]} of {len(seeds)} |")


if __name__ == "__main__":
    main(sys.argv[1])
