"""Compare two default-run results trees: which files differ, ignoring provenance/timing fields."""
import json, sys
from pathlib import Path
A, B = Path(sys.argv[1]), Path(sys.argv[2])
SKIP_KEYS = {"environment", "created_utc", "wall_s", "elapsed_s", "seconds", "time_s"}
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in SKIP_KEYS and not k.endswith(("_s", "_seconds", "per_s", "_utc"))}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
files = sorted(p.relative_to(A) for p in A.rglob("*") if p.is_file() and "benchmarks" not in p.parts)
same, differ = [], []
for rel in files:
    a, b = A / rel, B / rel
    if not b.exists():
        differ.append(f"{rel} (missing in B)"); continue
    if rel.suffix == ".json":
        eq = strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))
    else:
        eq = a.read_bytes() == b.read_bytes()
    (same if eq else differ).append(str(rel))
print(f"same: {len(same)} files; differ: {len(differ)}")
for d in differ: print("  differs:", d)
