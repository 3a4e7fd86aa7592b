"""Where a run's time went: the per-stage wall-time split from the rules' Snakemake benchmark files.

    python -m benchmarks.scaling [results/benchmarks] [--rules rules] [--json split.json]

Every rule writes `bench("name")` = results/benchmarks/<name>.tsv (Snakemake's format: a header
`s  h:m:s  max_rss  max_vms  max_uss  max_pss  io_in  io_out  mean_load  cpu_time`, then one line
per repeat). Files of one rule (one per wildcard value, e.g. each fine-tuning seed) are grouped
under the rule's `bench(...)` pattern, read from the workflow's rules/*.smk (`--rules`, by default
rules/ in the current directory, i.e. run it from the checkout; without it every job is its own stage). Times are each job's own wall time;
with `--cores` > 1 jobs overlap, so their sum can exceed the run's elapsed time.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from bertflow.errors import DataError

BENCH_CALL = re.compile(r'bench\(\s*f?"([^"]+)"\s*\)')


def read_benchmark(path: Path) -> dict:
    """Mean over the repeats of one Snakemake benchmark TSV: seconds, max RSS (MB), CPU seconds."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise DataError(f"{path}: not a Snakemake benchmark file (expected a header starting with 's' and one row per repeat)")

    def mean(key: str) -> float | None:
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "NA", "-")]
        return sum(values) / len(values) if values else None

    return {"job": path.stem, "s": mean("s"), "max_rss_mb": mean("max_rss"), "cpu_s": mean("cpu_time")}


def bench_patterns(rules_dir: Path) -> list[tuple[str, re.Pattern]]:
    """The `bench("...")` names of the workflow's rules, most specific first, as regexes."""
    names = {m for smk in sorted(rules_dir.glob("*.smk")) for m in BENCH_CALL.findall(smk.read_text())}
    names = [n for n in names if "{" in n or n.isidentifier()]

    def specificity(name: str) -> tuple[int, int]:
        literal = re.sub(r"\{[^}]*\}", "", name)
        return (len(literal), name.count("{"))

    ordered = sorted(names, key=specificity, reverse=True)
    return [(n, re.compile("^" + re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(n)) + "$")) for n in ordered]


def stage_of(job: str, patterns: list[tuple[str, re.Pattern]]) -> str:
    return next((name for name, regex in patterns if regex.match(job)), job)


def stage_split(bench_dir: str, rules_dir: Path | None) -> list[dict]:
    """Per stage: jobs, summed wall seconds, share of the total, CPU seconds and the largest max RSS.
    Jobs are grouped by the `bench(...)` patterns of `rules_dir`; with None, each job is its own stage."""
    files = sorted(Path(bench_dir).glob("*.tsv"))
    if not files:
        raise DataError(f"{bench_dir}: no benchmark .tsv files; run the workflow first (each rule writes one)")
    patterns = bench_patterns(rules_dir) if rules_dir is not None else []
    stages: dict[str, dict] = {}
    for path in files:
        job = read_benchmark(path)
        stage = stages.setdefault(stage_of(job["job"], patterns),
                                  {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
        stage["jobs"] += 1
        stage["wall_s"] += job["s"] or 0.0
        stage["cpu_s"] += job["cpu_s"] or 0.0
        stage["max_rss_mb"] = max(stage["max_rss_mb"], job["max_rss_mb"] or 0.0)
    total = sum(s["wall_s"] for s in stages.values()) or 1.0
    rows = [{"stage": name, **s, "share": s["wall_s"] / total} for name, s in stages.items()]
    return sorted(rows, key=lambda r: r["wall_s"], reverse=True)


def format_split(rows: list[dict]) -> str:
    header = f"{'stage (bench name)':40s} {'jobs':>4s} {'wall s':>9s} {'share':>7s} {'CPU s':>9s} {'max RSS MB':>10s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['stage']:40s} {r['jobs']:4d} {r['wall_s']:9.1f} {r['share']:7.1%} "
                     f"{r['cpu_s']:9.1f} {r['max_rss_mb']:10.0f}")
    lines.append(f"{'total (sum of job wall times)':40s} {sum(r['jobs'] for r in rows):4d} "
                 f"{sum(r['wall_s'] for r in rows):9.1f} {1:7.1%} {sum(r['cpu_s'] for r in rows):9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dir", nargs="?", default="results/benchmarks", help="the run's benchmark folder")
    parser.add_argument("--rules", default="rules", help="folder of the workflow's .smk files, for grouping (default: ./rules)")
    parser.add_argument("--json", help="also write the split as JSON here")
    args = parser.parse_args(argv)
    rules_dir = Path(args.rules)
    if not rules_dir.is_dir():
        print(f"note: no rules folder at {rules_dir} (pass --rules CHECKOUT/rules); each job is its own stage",
              file=sys.stderr)
    try:
        rows = stage_split(args.bench_dir, rules_dir if rules_dir.is_dir() else None)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_split(rows))
    if args.json:
        from bertflow.io import write_json

        write_json(args.json, {"bench_dir": args.bench_dir, "stages": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
