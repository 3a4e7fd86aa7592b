"""Inference benchmark stage: latency and peak memory of each model over sequence lengths and batch sizes.

Each model is measured in a fresh process (forked, on Linux, from one that imported torch and
transformers once). Latency: `repeats` timed forward passes per point,
taken in interleaved rounds (one pass of every point per round), so a slow spell of a shared
machine spreads over all points instead of bending one of them; reported as the median with the
p10-p90 spread. Inputs are random token ids (no padding), under `torch.inference_mode()`, with bf16
autocast on a GPU. Before timing, every point gets `warmup` untimed passes (at least one), in
ascending batch x length; they also give its memory: on CUDA `torch.cuda.max_memory_allocated()`
(reset before each point), on CPU the growth of the process's peak resident set size (`ru_maxrss`)
over the size after loading the model, which in ascending order is each point's own peak.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .errors import DataError
from .provenance import device_info, environment_info

log = logging.getLogger(__name__)

COLUMNS = ["model", "sweep", "batch_size", "seq_len", "latency_ms_median", "latency_ms_p10", "latency_ms_p90",
           "tokens_per_s", "peak_memory_mb", "memory_kind", "device", "precision", "torch", "transformers"]


def timed_forward(model, ids, device: str) -> float:
    """Seconds of one forward pass (the GPU's queue drained before and after)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model(input_ids=ids)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def latency_quantiles(times: list[float]) -> tuple[float, float, float]:
    """p10, median and p90 (linear interpolation; one sample gives it three times)."""
    if len(times) == 1:
        return times[0], times[0], times[0]
    deciles = statistics.quantiles(times, n=10, method="inclusive")
    return deciles[0], statistics.median(times), deciles[-1]


def measure_model(model_dir: str, points: list[tuple[str, int, int]], warmup: int, repeats: int,
                  device: str) -> list[dict]:
    """All points of one model, in the calling process (the stage calls it through `run_model`)."""
    import resource

    import torch
    import transformers

    from .runtime import resolve_device

    device = resolve_device(device)
    config = transformers.AutoConfig.from_pretrained(model_dir)
    model_class = getattr(transformers, (config.architectures or ["AutoModel"])[0], transformers.AutoModel)
    model = model_class.from_pretrained(model_dir).to(device).eval()  # with its head, as deployed
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    inputs, memory = {}, {}
    with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        for point in sorted(map(tuple, points), key=lambda p: (p[1] * p[2], p[1])):
            _, batch_size, seq_len = point
            if seq_len > config.max_position_embeddings:
                log.info("%s: seq_len %d exceeds the model's positions; skipped", model_dir, seq_len)
                continue
            ids = torch.randint(5, config.vocab_size, (batch_size, seq_len),
                                generator=torch.Generator().manual_seed(0)).to(device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for _ in range(max(warmup, 1)):
                model(input_ids=ids)
            if device == "cuda":
                torch.cuda.synchronize()
                memory[point] = (torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated")
            else:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - loaded_rss
                memory[point] = (peak, "cpu_peak_rss_growth")
            inputs[point] = ids
        times = {point: [] for point in inputs}
        for _ in range(repeats):
            for point, ids in inputs.items():
                times[point].append(timed_forward(model, ids, device))
    rows = []
    for (sweep, batch_size, seq_len), point_times in times.items():
        p10, median, p90 = latency_quantiles(point_times)
        peak, kind = memory[(sweep, batch_size, seq_len)]
        rows.append({
            "sweep": sweep, "batch_size": batch_size, "seq_len": seq_len,
            "latency_ms_median": 1000 * median, "latency_ms_p10": 1000 * p10, "latency_ms_p90": 1000 * p90,
            "tokens_per_s": batch_size * seq_len / median,
            "peak_memory_mb": peak, "memory_kind": kind, "device": device,
            "precision": "bf16" if bf16 else "fp32",
            "torch": torch.__version__, "transformers": transformers.__version__,
        })
    return rows


def run_model(model_dir: str, points: list, warmup: int, repeats: int, device: str) -> tuple[list[dict], dict]:
    """`measure_model` in a fresh process, so earlier models do not inflate the memory: on CPU the
    figure is the growth of the process's peak RSS, which never goes down. Returns the rows and the
    device the child saw (`provenance.device_info`)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_child_context()) as pool:
        try:
            return pool.submit(_measure_with_device, model_dir, points, warmup, repeats, device).result()
        except Exception as err:
            raise RuntimeError(f"{model_dir}: inference benchmark failed: {type(err).__name__}: {err}") from err


def _child_context():
    """Forked children on Linux (see `preload_model_classes`); spawned ones elsewhere, where fork
    is unsafe (macOS) or missing."""
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def preload_model_classes(model_dirs: list[str]) -> None:
    """Import torch, transformers and the models' classes once in this process, so each forked child
    starts in milliseconds instead of re-importing them (about 6 s of CPU per model on a small CPU).
    Nothing here runs a model or touches CUDA, so every fork starts clean."""
    if _child_context().get_start_method() != "fork":
        return
    import torch  # noqa: F401
    import transformers

    for model_dir in model_dirs:
        architectures = json.loads(Path(model_dir, "config.json").read_text()).get("architectures") or []
        for name in architectures:
            getattr(transformers, name, None)  # transformers imports a model's module on first access


def _measure_with_device(model_dir: str, points: list, warmup: int, repeats: int, device: str):
    rows = measure_model(model_dir, points, warmup, repeats, device)
    return rows, device_info()


def grid(seq_lens: list[int], batch_sizes: list[int], fixed_batch: int, fixed_seq_len: int) -> list[tuple[str, int, int]]:
    points = [("seq_len", fixed_batch, s) for s in seq_lens]
    points += [("batch_size", b, fixed_seq_len) for b in batch_sizes]
    return points


def benchmark_models(*, models: dict[str, str], out_csv: str, out_json: str, plots: dict, seq_lens: list[int],
                     batch_sizes: list[int], fixed_batch: int, fixed_seq_len: int, warmup: int, repeats: int,
                     device: str) -> list[dict]:
    """Stage entry: every model over both sweeps -> CSV, JSON (with the environment) and plots."""
    for name, model_dir in models.items():
        if not Path(model_dir, "config.json").is_file():
            raise DataError(f"{model_dir}: no config.json for benchmark model {name!r}")
    points = grid(seq_lens, batch_sizes, fixed_batch, fixed_seq_len)
    preload_model_classes(list(models.values()))
    rows, device_seen = [], None
    for name, model_dir in models.items():
        model_rows, device_seen = run_model(model_dir, points, warmup, repeats, device)
        for point in model_rows:
            rows.append({"model": name, **point})
            log.info("%s %s batch %d seq %d: %.2f ms, %.0f MB", name, point["sweep"], point["batch_size"],
                     point["seq_len"], point["latency_ms_median"], point["peak_memory_mb"])
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    # The device as the measuring process saw it (this one does not use torch itself).
    environment = {**environment_info(), "device": device_seen or device_info()}
    Path(out_json).write_text(json.dumps({"rows": rows, "environment": environment}, indent=2))
    plot_sweeps(rows, plots)
    return rows


def plain_log_ticks(axis, values: list) -> None:
    """Ticks at the measured values, written as plain numbers (128, not 2^7) on a log axis."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    axis.set_ticks(values)
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(NullFormatter())


def plot_sweeps(rows: list[dict], plots: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "latency_vs_seq_len": ("seq_len", "seq_len", "latency_ms_median", "latency (ms, median, p10-p90 band)"),
        "memory_vs_seq_len": ("seq_len", "seq_len", "peak_memory_mb", "peak memory (MB)"),
        "memory_vs_batch_size": ("batch_size", "batch_size", "peak_memory_mb", "peak memory (MB)"),
    }
    for key, (sweep, x, y, ylabel) in panels.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for model in dict.fromkeys(r["model"] for r in rows):
            points = sorted((r[x], r) for r in rows if r["model"] == model and r["sweep"] == sweep)
            xs = [p[0] for p in points]
            line, = ax.plot(xs, [p[1][y] for p in points], marker="o", label=model)
            if y == "latency_ms_median":  # the p10-p90 spread of the timed passes
                ax.fill_between(xs, [p[1]["latency_ms_p10"] for p in points],
                                [p[1]["latency_ms_p90"] for p in points], color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        plain_log_ticks(ax.xaxis, sorted({r[x] for r in rows if r["sweep"] == sweep}))
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(ylabel)
        kind = rows[0]["memory_kind"] if rows else ""
        ax.set_title(f"{ylabel} vs {x.replace('_', ' ')} ({rows[0]['device'] if rows else ''}"
                     f"{', ' + kind if 'memory' in y else ''})", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots[key], dpi=110)
        plt.close(fig)
