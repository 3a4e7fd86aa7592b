"""Per-stage table of three default runs: median (min-max) wall and CPU seconds per stage, and the
whole runs' elapsed and CPU time.

    python docs/results/cpu-stage-overhead/current/table.py docs/results/cpu-stage-overhead/current

reads runN.split.json (`python -m benchmarks.scaling results/benchmarks --json runN.split.json`)
and runN.time.txt (`/usr/bin/time -v` of the whole `snakemake` call) for N = 1, 2, 3."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

RUNS = ("run1", "run2", "run3")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def whole_run(text: str) -> tuple[float, float]:
    """Elapsed and CPU (user + system) seconds of snakemake and every job, from `time -v`."""
    h, m, s = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text).groups()
    elapsed = int(h or 0) * 3600 + int(m) * 60 + float(s)
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text).group(1)) for kind in ("User", "System"))
    return elapsed, cpu


def main(folder: str) -> None:
    root = Path(folder)
    runs = {run: {s["stage"]: s for s in json.loads((root / f"{run}.split.json").read_text())["stages"]} for run in RUNS}
    print("| stage | jobs | wall s, median (min–max) | CPU s | max RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for stage in sorted(runs[RUNS[0]], key=lambda st: -runs[RUNS[0]][st]["wall_s"]):
        rows = [runs[run][stage] for run in RUNS]
        print(f"| {stage} | {rows[0]['jobs']} | {spread([r['wall_s'] for r in rows])} | "
              f"{spread([r['cpu_s'] for r in rows])} | {max(r['max_rss_mb'] for r in rows):.0f} |")
    totals = [whole_run((root / f"{run}.time.txt").read_text()) for run in RUNS]
    print()
    print("| whole run | run 1, 2, 3 | median |")
    print("|---|---:|---:|")
    for name, values in (("elapsed (s)", [t[0] for t in totals]),
                         ("CPU s, snakemake and every job (`/usr/bin/time` user+sys)", [t[1] for t in totals])):
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | **{statistics.median(values):.1f}** |")


if __name__ == "__main__":
    main(sys.argv[1])
