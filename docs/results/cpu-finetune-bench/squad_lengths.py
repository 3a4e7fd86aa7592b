"""Real tokens per SQuAD window in finetune_bench's setup (the tokenizer it trains, max_length 384, doc_stride 128),
and how far random batches of 16 are padded once cut to their longest row (dynamic padding).

    PYTHONPATH=src python docs/results/cpu-finetune-bench/squad_lengths.py
"""

import tempfile, torch
from pathlib import Path
from benchmarks.finetune_bench import parse_args, prepare_task, task_settings
from bertflow.finetune import FinetuneSettings, TASKS, load_task_model
args = parse_args(["--tasks", "squad", "--squad-file", "/work/shared/data/squad/squad-v1.1-dev-part1.json",
                   "--train-samples", "squad=800", "--eval-samples", "squad=400"])
with tempfile.TemporaryDirectory() as tmp:
    files = prepare_task("squad", args, Path(tmp))
    s = FinetuneSettings.from_config(task_settings("squad", args))
    model, tok, _ = load_task_model("squad", files["model_dir"], s.max_length)
    f = TASKS["squad"](tok, s, files["train_file"], files["validation_file"]).build_features()
    for split in ("train", "eval"):
        L = f[split]["attention_mask"].sum(1).float()
        g = torch.Generator().manual_seed(0); order = torch.randperm(len(L), generator=g)
        padded = sum(float(L[b].max()) * len(b) for b in order.split(16))
        print(split, len(L), "mean", round(L.mean().item(), 1), "median", L.median().item(), "full", (L == 384).float().mean().item(), "padded/real (batch 16, random)", round(padded / L.sum().item(), 2))
