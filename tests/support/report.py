"""Stage outputs the report, card and upload tests start from: a tiny real model plus the JSON/CSV
files the pretraining and fine-tuning stages write (same keys, small made-up numbers)."""

from __future__ import annotations

import csv
from pathlib import Path

from support.finetune import make_tiny_model

from bertflow.io import write_json

PERPLEXITY_ROWS = [
    {"epoch": 1, "step": 40, "train_loss": 5.9, "eval_loss": 5.5, "perplexity": 244.69, "tokens_per_s": 9000.0,
     "elapsed_s": 12.0},
    {"epoch": 2, "step": 80, "train_loss": 5.1, "eval_loss": 4.9, "perplexity": 134.29, "tokens_per_s": 9500.0,
     "elapsed_s": 23.5},
]
SST2 = {"accuracy": 81.25, "f1": 80.5, "precision": 79.0, "recall": 82.0, "finetune_wall_time_s": 14.0}
SQUAD = {"exact_match": 12.5, "f1": 20.75, "finetune_wall_time_s": 30.0}


def summary(task: str, model: str, mean: dict, seeds=(1, 2)) -> dict:
    """What summary.summarize_seeds writes (mean/std over seeds)."""
    return {"task": task, "model": model, "model_dir": "x", "seeds": list(seeds), "mean": dict(mean),
            "std": {k: 0.5 for k in mean}, "parameters": {}, "per_seed": {}}


def make_stage_outputs(root: Path) -> dict[str, str]:
    """A tiny pretrained model and every file the card and the upload read; returns their paths."""
    from bertflow.params_report import write_params_report

    model_dir = make_tiny_model(root / "pretrain")
    paths = {"model": model_dir, "tokenizer_report": str(root / "pretrain" / "tokenizer.json"),
             "validation_text": str(root / "pretrain" / "text.txt")}
    paths["params_json"], paths["params_md"] = str(root / "params.json"), str(root / "params.md")
    write_params_report(model_dir, paths["params_json"], paths["params_md"], name="pretrained")
    paths["perplexity"] = str(root / "perplexity.csv")
    with open(paths["perplexity"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(PERPLEXITY_ROWS[0]))
        writer.writeheader()
        writer.writerows(PERPLEXITY_ROWS)
    paths["plot"] = str(root / "perplexity.png")
    Path(paths["plot"]).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    paths["train_info"] = str(root / "train_info.json")
    write_json(paths["train_info"], {
        "device": "cpu", "precision": "fp32", "processes": 1, "wall_time_s": 23.5, "tokens_seen": 81920,
        "steps": 80, "epochs": 2, "global_batch_blocks": 16, "final_perplexity": 134.29, "parameters": 1,
        "settings": {"seq_len": 64, "batch_size": 16, "learning_rate": 0.001, "mlm_probability": 0.15},
        "environment": {"packages": {"bertflow": "0.1.0"}, "device": {"cuda_available": False, "cpu_threads": 1}},
    })
    paths["corpus_stats"] = str(root / "stats.json")
    write_json(paths["corpus_stats"], {"source": "generated", "train_lines": 950, "validation_lines": 50,
                                       "train_words": 40000, "validation_words": 2000})
    for task, mean in (("sst2", SST2), ("squad", SQUAD)):
        paths[task] = str(root / f"{task}_summary.json")
        write_json(paths[task], summary(task, "pretrained", mean))
    return paths


CARD_SETTINGS = {
    "model_name": None, "language": ["en"], "license": "apache-2.0", "datasets": [],
    "tags": ["bert", "fill-mask", "bertflow"], "include_finetune": True,
    "intended_use": "Teaching and research.", "limitations": "Small corpus; weak results.",
}


def write_card(paths: dict, out: str, *, tasks=("sst2", "squad"), settings: dict | None = None,
               sources: dict | None = None, corpus: dict | None = None, repo_id: str | None = "alice/tiny-bert"):
    from bertflow.card import write_model_card

    return write_model_card(
        params_json=paths["params_json"], train_info=paths["train_info"], perplexity_csv=paths["perplexity"],
        corpus_stats=paths["corpus_stats"], tokenizer_report=paths["tokenizer_report"],
        finetune_summaries={task: paths[task] for task in tasks},
        finetune_sources=sources or {task: {"source": "generated"} for task in tasks},
        settings={**CARD_SETTINGS, **(settings or {})}, corpus=corpus or {"source": "generated"},
        repo_id=repo_id, out=out, validation_text=paths["validation_text"], tokenizer_dir=paths["model"],
    )
