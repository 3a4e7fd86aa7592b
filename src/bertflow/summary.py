"""Summaries of the run, read from the stage outputs (no torch, no transformers):

- `summarize_seeds` (finetune_summary stage): one model's task metrics over seeds, mean and std;
- `write_summary` (summary_report stage): results/report.md, one page gathering the run:
  perplexity curve, tokenizer, parameters, the fine-tuning leaderboard (also written as CSV) with
  the GLUE score, the vocabulary reduction per task and model and, when it ran, the inference
  benchmark. Links are relative, so the page renders where it lies (or on a Git host).
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
from .task_keys import task_keys
from .tokenizer import vocabulary_shortfall


def train_examples_per_s(run: dict) -> float | None:
    """Training examples (SQuAD: windows) per second of the training loop, evaluation excluded:
    the full batches of every epoch the run trained, over the epochs' train_seconds."""
    epochs, settings = run.get("epochs") or [], run.get("settings") or {}
    seconds = sum(row.get("train_seconds", 0.0) for row in epochs)
    batch = settings.get("batch_size", 0) * run.get("processes", 1)
    if not seconds or not batch or "train_features" not in run:
        return None
    return run["train_features"] // batch * batch * len(epochs) / seconds


def summarize_seeds(metric_files: list[str], out: str) -> dict:
    """Mean and standard deviation over seeds of every numeric metric."""
    runs = [read_json(path) for path in metric_files]
    for run in runs:
        speed = train_examples_per_s(run)
        if speed is not None:
            run["train_examples_per_s"] = speed
    numeric = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("seed", "processes")]
    summary = {
        "task": runs[0]["task"], "model": runs[0]["model"], "model_dir": runs[0]["model_dir"],
        **task_keys(runs[0], metric_files[0]),
        "seeds": [r["seed"] for r in runs],
        "mean": {k: statistics.fmean(r[k] for r in runs) for k in numeric},
        "std": {k: statistics.stdev(r[k] for r in runs) if len(runs) > 1 else 0.0 for k in numeric},
        "parameters": runs[0]["parameters"],
        "per_seed": {str(r["seed"]): {k: r[k] for k in numeric} for r in runs},
        "vocab_reduction": runs[0].get("vocab_reduction"),
        # How to show the task's metrics (its official keys, display name, whether it counts in GLUE).
        **{k: runs[0][k] for k in ("task_metrics", "task_label", "glue") if k in runs[0]},
        "environment": environment_info(),
    }
    write_json(out, summary)
    return summary


def _rel(path: str | Path, out: str | Path) -> str:
    return Path(os.path.relpath(path, Path(out).parent)).as_posix()


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# Short names of the official metrics in the leaderboard's header.
METRIC_NAMES = {"accuracy": "acc", "f1": "F1", "exact_match": "EM", "matthews_correlation": "MCC",
                "pearson": "Pearson", "spearmanr": "Spearman", "accuracy_matched": "acc-m",
                "accuracy_mismatched": "acc-mm"}


def task_info(models: dict[str, dict], tasks: list[str]) -> dict[str, dict]:
    """task -> its metric keys, label and GLUE flag, from the first summary of it (tasks no model ran are left out)."""
    info = {}
    for task in tasks:
        summary = next((entry[task] for entry in models.values() if entry.get(task)), None)
        if summary is not None:
            info[task] = task_keys(summary, f"summary.json of {task}/{summary['model']}")
    return info


def _task_score(summary: dict | None, metrics: list[str]) -> float | None:
    """A task's score as the GLUE benchmark takes it: the mean of its official metrics."""
    if summary is None or any(key not in summary["mean"] for key in metrics):
        return None
    return statistics.fmean(summary["mean"][key] for key in metrics)


def _ranks(values: list[float | None]) -> list[int | None]:
    """1 = best; ties share a rank; no value, no rank."""
    return [None if v is None else 1 + sum(1 for o in values if o is not None and o > v) for v in values]


def _base_model_parameters(params: dict) -> int:
    p = params["parameters"]
    return p["base_model"] if "base_model" in p else p["total"] - p["head"]  # a report from before base_model


def leaderboard(models: dict[str, dict], tasks: list[str]) -> dict:
    """Rows of the leaderboard plus what they mean: the tasks, which of them the GLUE score
    averages, and what the rank is by. `models`: name -> {"params": report, task: summary, ...}."""
    info = task_info(models, tasks)
    glue = [task for task, meta in info.items() if meta["glue"]]
    rows = []
    for name, entry in models.items():
        params = entry["params"]
        row = {"model": name, "seq_len": params["max_positions"], "download_bytes": params["files"]["folder_bytes"]}
        for task, meta in info.items():
            summary = entry.get(task)
            for key in meta["task_metrics"]:
                row[f"{task}_{key}"] = summary["mean"].get(key) if summary else None
        scores = [_task_score(entry.get(task), info[task]["task_metrics"]) for task in glue]
        row["glue_score"] = statistics.fmean(scores) if glue and None not in scores else None
        row.update({"vocab_size": params["vocab_size"], "d_model": params["d_model"], "d_ff": params["d_ff"],
                    "layers": params["layers"], "parameters": _base_model_parameters(params)})
        for task in info:
            mean = (entry.get(task) or {}).get("mean", {})
            row[f"{task}_finetune_wall_time_s"] = mean.get("finetune_wall_time_s")
            row[f"{task}_train_examples_per_s"] = mean.get("train_examples_per_s")
        rows.append(row)
    first = next(iter(info), None)
    rank_key = "glue_score" if glue else f"{first}_{info[first]['task_metrics'][0]}" if first else None
    for row, rank in zip(rows, _ranks([row.get(rank_key) for row in rows])):
        row["rank"] = rank
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["model"]))
    rank_by = ("the GLUE score" if glue else
               f"{info[first]['task_label']} {info[first]['task_metrics'][0]}" if first else "nothing (no task ran)")
    return {"tasks": info, "glue_tasks": glue, "rank_by": rank_by, "rows": rows}


def _metric_header(meta: dict, key: str) -> str:
    return f"{meta['task_label']} {METRIC_NAMES.get(key, key)}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} s"


def leaderboard_section(board: dict) -> list[str]:
    info, glue = board["tasks"], board["glue_tasks"]
    header = ["model", "seq_len", "download size"]
    header += [_metric_header(meta, key) for meta in info.values() for key in meta["task_metrics"]]
    header += ["GLUE score"] * bool(glue) + ["rank", "vocab size", "d_model", "d_ff", "layers", "parameters"]
    header += [f"{meta['task_label']} {what}" for meta in info.values() for what in ("wall time", "train ex/s")]
    cells = []
    for r in board["rows"]:
        row = [r["model"], r["seq_len"], size(r["download_bytes"])]
        row += [_fmt(r[f"{task}_{key}"]) for task, meta in info.items() for key in meta["task_metrics"]]
        row += [_fmt(r["glue_score"])] * bool(glue)
        row += [r["rank"] or "n/a", f"{r['vocab_size']:,}", r["d_model"], r["d_ff"], r["layers"], f"{r['parameters']:,}"]
        for task in info:
            row += [_seconds(r[f"{task}_finetune_wall_time_s"]), _fmt(r[f"{task}_train_examples_per_s"], 1)]
        cells.append(row)
    glue_text = (f" GLUE score = mean over the GLUE tasks run ({', '.join(info[t]['task_label'] for t in glue)}), "
                 "each task's metrics averaged first, as the GLUE benchmark does." if glue else "")
    return ["## Leaderboard", "",
            "Fine-tuned on the same data with the same settings; metrics are means over the seeds, on the "
            "validation split, in percent (correlations x 100)." + glue_text + f" Rank by {board['rank_by']} "
            "(1 = best; ties share a rank). seq_len = longest input the model accepts (max positions); "
            "download size = the model folder; parameters = the base model (transformers' AutoModel: "
            "embeddings, layers and the pooler where the family has one) without any pretraining or task "
            "head; wall time = one seed's fine-tuning (training and evaluation) per task; train ex/s = "
            "training examples (SQuAD: windows) per second of the training loop.", ""] + table(header, cells) + [""]


def write_leaderboard_csv(board: dict, path: str) -> None:
    """The leaderboard's rows, unrounded, with machine-readable column names."""
    rows = board["rows"]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def vocab_reduction_section(models: dict[str, dict], info: dict[str, dict]) -> list[str]:
    """Per task x model: vocabulary kept, vocabulary and model size reduction (finetune.<task>.reduce_vocab)."""
    rows = [[meta["task_label"], name, f"{vr['vocab_kept']:,} of {vr['vocab_full']:,}",
             f"{vr['vocab_reduction_pct']:.1f}%", f"{vr['model_size_reduction_pct']:.1f}%"]
            for task, meta in info.items() for name, entry in models.items()
            if (vr := (entry.get(task) or {}).get("vocab_reduction"))]
    lines = ["## Vocabulary reduction", ""]
    if not rows:
        return lines + ["No task ran with `reduce_vocab` (finetune.<task>.reduce_vocab), so every model was "
                        "fine-tuned with its whole vocabulary.", ""]
    return lines + ["Fine-tuning trains only the embedding rows of tokens seen in the task's data (the full "
                    "vocabulary is restored before saving). Model size reduction = embedding rows left out, as a "
                    "share of all the model's parameters.", ""] + table(
        ["task", "model", "vocabulary kept", "vocabulary reduction", "model size reduction"], rows,
        numeric={2, 3, 4}) + [""]


def task_details_section(models: dict[str, dict], info: dict[str, dict]) -> list[str]:
    lines = ["## Fine-tuning details", "", "Mean ± standard deviation over seeds (percent)."]
    for task, meta in info.items():
        keys = list(meta["task_metrics"])
        keys += [k for k in ("f1", "precision", "recall") if k not in keys and any(
            k in (entry.get(task) or {}).get("mean", {}) for entry in models.values())]
        rows = [[name, len(entry[task]["seeds"]), *(_mean_std(entry[task], k) for k in keys)]
                for name, entry in models.items() if entry.get(task)]
        lines += ["", f"### {meta['task_label']}", ""] + table(["model", "seeds", *keys], rows)
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
                     f"{p['embeddings']:,}", f"{p['per_layer']:,}", f"{p['base_model']:,}", f"{p['head']:,}"])
    return ["## Parameters", "",
            "Counted from each saved model and checked against the closed-form formulas of its family (the "
            "stage fails on a mismatch; a family or head without a formula says so in its report); the linked "
            "reports have the per-module tables. Base model = everything but the pretraining or task head.",
            ""] + table(
        ["model", "class", "parameters", "word embeddings", "fp32", "fp16/bf16", "embeddings", "per layer",
         "base model", "head"], rows, numeric=set(range(2, 10))) + [""]


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
                  tasks: list[str] | None = None, leaderboard_csv: str | None = None,
                  benchmark_csv: str | None = None, benchmark_missing: str | None = None, card: str | None = None,
                  title: str = "bertflow run") -> str:
    """Stage entry. `param_reports`: name -> (json, md); `models`: name -> {"params": json, <task>:
    summary.json, ...} (tasks optional); `tasks`: the run's task list, in the report's order
    (default: the order of `models`' keys); `leaderboard_csv`: where the leaderboard's CSV goes."""
    loaded_params = {name: (read_json(js), md) for name, (js, md) in param_reports.items()}
    loaded_models = {name: {key: read_json(path) for key, path in files.items()} for name, files in models.items()}
    tasks = tasks if tasks is not None else list(dict.fromkeys(k for f in models.values() for k in f if k != "params"))
    lines = [f"# {title}: report", "",
             f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from the stage outputs in "
             f"`{Path(out).parent}`." + (f" Model card: [{_rel(card, out)}]({_rel(card, out)})." if card else ""), ""]
    lines += perplexity_section(read_perplexity(perplexity_csv), perplexity_png, out)
    lines += tokenizer_section(read_json(tokenizer_report))
    lines += parameters_section(loaded_params, out)
    if loaded_models:
        board = leaderboard(loaded_models, tasks)
        lines += leaderboard_section(board)
        if leaderboard_csv:
            write_leaderboard_csv(board, leaderboard_csv)
            lines += [f"The same table as CSV: [{_rel(leaderboard_csv, out)}]({_rel(leaderboard_csv, out)}).", ""]
        lines += vocab_reduction_section(loaded_models, board["tasks"])
        lines += task_details_section(loaded_models, board["tasks"])
    lines += benchmark_section(benchmark_csv, benchmark_missing, out)
    text = "\n".join(lines)
    write_text(out, text)
    return text
