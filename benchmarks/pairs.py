"""Honest A/B timing on a shared machine: both sides as interleaved pairs, each run in a fresh
Python process, and the median with min-max of the per-pair ratios (never the best of each side).

A slow spell of the machine then hits both members of a pair alike, and a single lucky run of
one side cannot make the result.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import child_env


def interleaved(rounds: int, sides: tuple[str, str]) -> list[tuple[int, str]]:
    """(round, side) in run order: A B, B A, A B, ... (the side that goes first alternates, so
    neither always runs on a machine the other has just warmed or loaded)."""
    order = []
    for r in range(rounds):
        order += [(r, side) for side in (sides if r % 2 == 0 else sides[::-1])]
    return order


def ratio_summary(ratios: list[float]) -> dict:
    """Median and min-max of per-pair ratios."""
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "pairs": list(ratios)}


def ratio_text(summary: dict) -> str:
    return f"{summary['median']:.2f}x (pairs {summary['min']:.2f}-{summary['max']:.2f}, n={len(summary['pairs'])})"


def run_worker(module: str, spec: dict, workdir: str | Path, label: str, env: dict | None = None) -> dict:
    """`python -m MODULE --worker SPEC OUT` in a fresh process; its JSON result, or a RuntimeError
    with the end of its stderr."""
    spec_path, out_path = Path(workdir, f"{label}.spec.json"), Path(workdir, f"{label}.result.json")
    out_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", module, "--worker", str(spec_path), str(out_path)],
                          capture_output=True, text=True, env=child_env(env))
    if proc.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"{label} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out_path.read_text())


def peak_memory_bytes(device: str) -> int:
    """CUDA max allocated on a GPU, else this process's peak RSS (Linux ru_maxrss is in KiB)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
