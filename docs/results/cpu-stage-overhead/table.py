"""Per-stage table from the interleaved runs: median of the before/after pairs (wall and CPU)."""
import json, statistics, sys
pairs = [("before1", "after1"), ("before2", "after2"), ("before3", "after3")]
runs = {}
for pair in pairs:
    for label in pair:
        runs[label] = {s["stage"]: s for s in json.load(open(f"/tmp/ovh/{label}.split.json"))["stages"]}
stages = list(runs["before1"])
med = lambda xs: statistics.median(xs)
print("| stage | jobs | wall s before | wall s after | CPU s before | CPU s after | max RSS MB before → after |")
print("|---|---:|---:|---:|---:|---:|---:|")
tot = {k: [] for k in ("wb", "wa", "cb", "ca")}
for st in stages:
    wb = [runs[b][st]["wall_s"] for b, _ in pairs]; wa = [runs[a][st]["wall_s"] for _, a in pairs]
    cb = [runs[b][st]["cpu_s"] for b, _ in pairs]; ca = [runs[a][st]["cpu_s"] for _, a in pairs]
    rb = max(runs[b][st]["max_rss_mb"] for b, _ in pairs); ra = max(runs[a][st]["max_rss_mb"] for _, a in pairs)
    print(f"| {st} | {runs['before1'][st]['jobs']} | {med(wb):.1f} ({min(wb):.1f}–{max(wb):.1f}) | {med(wa):.1f} ({min(wa):.1f}–{max(wa):.1f}) "
          f"| {med(cb):.1f} | {med(ca):.1f} | {rb:.0f} → {ra:.0f} |")
for label in runs:
    t = open(f"/tmp/ovh/{label}.total").read().split()[1]
    log = open(f"/tmp/ovh/{label}.log").read()
    user = float(log.split("User time (seconds): ")[1].split()[0]); sys_ = float(log.split("System time (seconds): ")[1].split()[0])
    print(f"{label}: elapsed {float(t):.1f} s, CPU (user+sys of snakemake and every job) {user + sys_:.1f} s")
ratios_wall, ratios_cpu = [], []
for b, a in pairs:
    tb, ta = (float(open(f"/tmp/ovh/{l}.total").read().split()[1]) for l in (b, a))
    cpu = []
    for l in (b, a):
        log = open(f"/tmp/ovh/{l}.log").read()
        cpu.append(float(log.split("User time (seconds): ")[1].split()[0]) + float(log.split("System time (seconds): ")[1].split()[0]))
    ratios_wall.append(tb / ta); ratios_cpu.append(cpu[0] / cpu[1])
print(f"before/after elapsed ratio per pair: {[round(r, 2) for r in ratios_wall]} median {statistics.median(ratios_wall):.2f}")
print(f"before/after CPU ratio per pair: {[round(r, 2) for r in ratios_cpu]} median {statistics.median(ratios_cpu):.2f}")
