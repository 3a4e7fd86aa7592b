"""Summaries of the run, read from the stage outputs (no torch, no transformers):

- `summarize_seeds` (finetune_summary stage): one model's task metrics over seeds, mean and std;
- `write_summary` (summary_report stage): results/report.md, one page gathering the run:
  perplexity curve, tokenizer, parameters, the fine-tuning leaderboard and, when it ran, the
  inference benchmark. Links are relative, so the page renders where it lies (or on a Git host).
"""

from __future__ import annotations

import csv
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path

from .card import perplexity_table, read_perplexity
from .io import read_json, write_json, write_text
from .markdown import size, table
from .provenance import environment_info
from .tokenizer import vocabulary_shortfall


def summarize_seeds(metric_files: list[str], out: str) -> dict:
    """Mean and standard deviation over seeds of every numeric metric."""
    runs = [read_json(path) for path in metric_files]
    numeric = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("seed", "processes")]
    summary = {
        "task": runs[0]["task"], "model": runs[0]["model"], "model_dir": runs[0]["model_dir"],
        "seeds": [r["seed"] for r in runs],
        "mean": {k: statistics.fmean(r[k] for r in runs) for k in numeric},
        "std": {k: statistics.stdev(r[k] for r in runs) if len(runs) > 1 else 0.0 for k in numeric},
        "parameters": runs[0]["parameters"],
        "per_seed": {str(r["seed"]): {k: r[k] for k in numeric} for r in runs},
        "vocab_reduction": runs[0].get("vocab_reduction"),
        "environment": environment_info(),
    }
    write_json(out, summary)
    return summary


def _rel(path: str | Path, out: str | Path) -> str:
    return Path(os.path.relpath(path, Path(out).parent)).as_posix()


def _metric(summary: dict | None, key: str) -> float | None:
    return None if summary is None else summary["mean"].get(key)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def leaderboard_rows(models: dict[str, dict]) -> list[dict]:
    """One row per fine-tuned model, ranked by SST-2 accuracy (1 = best; ties share a rank)."""
    rows = []
    for name, entry in models.items():
        params, sst2, squad = entry["params"], entry.get("sst2"), entry.get("squad")
        wall = [s["mean"]["finetune_wall_time_s"] for s in (sst2, squad) if s and "finetune_wall_time_s" in s["mean"]]
        rows.append({
            "model": name, "seq_len": params["max_positions"], "download_bytes": params["files"]["folder_bytes"],
            "sst2_accuracy": _metric(sst2, "accuracy"), "vocab_size": params["vocab_size"],
            "d_model": params["d_model"], "d_ff": params["d_ff"], "layers": params["layers"],
            "parameters": params["parameters"]["total"], "finetune_wall_time_s": sum(wall) if wall else None,
            "squad_exact_match": _metric(squad, "exact_match"), "squad_f1": _metric(squad, "f1"),
        })
    for row in rows:
        acc = row["sst2_accuracy"]
        better = sum(1 for r in rows if r["sst2_accuracy"] is not None and acc is not None and r["sst2_accuracy"] > acc)
        row["rank"] = None if acc is None else 1 + better
    return sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["model"]))


def leaderboard_section(rows: list[dict]) -> list[str]:
    header = ["model", "seq_len", "download size", "SST-2 accuracy (%)", "rank", "vocab size", "d_model", "d_ff",
              "layers", "parameters", "fine-tune wall time", "SQuAD EM / F1 (%)"]
    cells = [[r["model"], r["seq_len"], size(r["download_bytes"]), _fmt(r["sst2_accuracy"]),
              r["rank"] or "n/a", f"{r['vocab_size']:,}", r["d_model"], r["d_ff"], r["layers"],
              f"{r['parameters']:,}", "n/a" if r["finetune_wall_time_s"] is None else f"{r['finetune_wall_time_s']:,.0f} s",
              f"{_fmt(r['squad_exact_match'])} / {_fmt(r['squad_f1'])}"] for r in rows]
    return ["## Leaderboard", "",
            "Fine-tuned on the same data with the same settings; metrics are means over the seeds, on the "
            "validation split. seq_len = longest input the model accepts (max positions); download size = "
            "the model folder; parameters = the pretrained model without a task head; wall time = SST-2 + SQuAD "
            "per seed.", ""] + table(header, cells) + [""]


def task_details_section(models: dict[str, dict]) -> list[str]:
    lines = ["## Fine-tuning details", "", "Mean ± standard deviation over seeds (percent)."]
    for task, keys in (("sst2", ("accuracy", "f1", "precision", "recall")), ("squad", ("exact_match", "f1"))):
        rows = [[name, len(entry[task]["seeds"]), *(_mean_std(entry[task], k) for k in keys)]
                for name, entry in models.items() if entry.get(task)]
        if rows:
            lines += ["", f"### {'SST-2' if task == 'sst2' else 'SQuAD v1.1'}", ""]
            lines += table(["model", "seeds", *keys], rows)
    return lines + [""]


def _mean_std(summary: dict, key: str) -> str:
    if key not in summary["mean"]:
        return "n/a"
    return f"{summary['mean'][key]:.2f} ± {summary['std'].get(key, 0.0):.2f}"


def perplexity_section(rows: list[dict], plot: str, out: str) -> list[str]:
    return ["## Pretraining", "", f"![Validation perplexity per epoch]({_rel(plot, out)})", ""] + perplexity_table(rows) + [""]


def tokenizer_section(report: dict) -> list[str]:
    return ["## Tokenizer", ""] + table(
        ["vocab size", "UNK rate", "sub-words per word", "validation words"],
        [[f"{report['vocab_size']:,}", f"{100 * report['unk_rate']:.3f}%", f"{report['subwords_per_word']:.3f}",
          f"{report.get('validation_words', 0):,}"]], numeric={0, 1, 2, 3},
    ) + [""] + ([f"**Note:** {vocabulary_shortfall(report)}.", ""] if vocabulary_shortfall(report) else [])


def parameters_section(reports: dict[str, tuple[dict, str]], out: str) -> list[str]:
    rows = []
    for name, (report, md) in reports.items():
        p, words = report["parameters"], report["word_embeddings"]
        rows.append([f"[{name}]({_rel(md, out)})", report["architecture"], f"{p['total']:,}",
                     f"{words['params']:,}", size(words["bytes"]["fp32"]), size(words["bytes"]["fp16"]),
                     f"{p['embeddings']:,}", f"{p['per_layer']:,}", f"{p['head']:,}"])
    return ["## Parameters", "",
            "Counted from each saved model and checked against the closed-form formulas (the stage fails on a "
            "mismatch); the linked reports have the per-module tables.", ""] + table(
        ["model", "class", "parameters", "word embeddings", "fp32", "fp16/bf16", "embeddings", "per layer", "head"],
        rows, numeric=set(range(2, 9))) + [""]


def benchmark_section(path: str | None, missing: str | None = None, out: str | None = None) -> list[str]:
    if missing:
        return ["## Inference benchmark", "",
                f"benchmark.enabled is true but no rule of this workflow produces `{missing}` yet.", ""]
    if not path:
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return ["## Inference benchmark", "", f"`{path}` is empty.", ""]
    header, body = rows[0], [[_number(cell) for cell in row] for row in rows[1:]]
    numeric = {i for i in range(len(header)) if body and all(_is_number(row[i]) for row in rows[1:])}
    plots = [f"![{png.stem.replace('_', ' ')}]({_rel(png, out) if out else png})"
             for png in sorted(Path(path).parent.glob("*.png"))]  # the benchmark rule's plots, beside its CSV
    return (["## Inference benchmark", "", f"From `{Path(path).name}` (one row per model and shape).", ""]
            + table(header, body, numeric=numeric) + [""] + [line for plot in plots for line in (plot, "")])


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _number(cell: str) -> str:
    """Readable numbers from a CSV cell: integers as they are, floats to a sensible precision."""
    if not _is_number(cell) or cell.lstrip("-").isdigit():
        return cell
    value = float(cell)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def write_summary(*, out: str, perplexity_csv: str, perplexity_png: str, tokenizer_report: str,
                  param_reports: dict[str, tuple[str, str]], models: dict[str, dict[str, str]],
                  benchmark_csv: str | None = None, benchmark_missing: str | None = None, card: str | None = None, title: str = "bertflow run") -> str:
    """Stage entry. `param_reports`: name -> (json, md); `models`: name -> {"params": json,
    "sst2": summary.json, "squad": summary.json} (tasks optional)."""
    loaded_params = {name: (read_json(js), md) for name, (js, md) in param_reports.items()}
    loaded_models = {name: {key: read_json(path) for key, path in files.items()} for name, files in models.items()}
    lines = [f"# {title}: report", "",
             f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from the stage outputs in "
             f"`{Path(out).parent}`." + (f" Model card: [{_rel(card, out)}]({_rel(card, out)})." if card else ""), ""]
    lines += perplexity_section(read_perplexity(perplexity_csv), perplexity_png, out)
    lines += tokenizer_section(read_json(tokenizer_report))
    lines += parameters_section(loaded_params, out)
    if loaded_models:
        lines += leaderboard_section(leaderboard_rows(loaded_models))
        lines += task_details_section(loaded_models)
    lines += benchmark_section(benchmark_csv, benchmark_missing, out)
    text = "\n".join(lines)
    write_text(out, text)
    return text
