"""Where our SST-2 training step spends its time on CPU (1 thread): torch.profiler over one epoch of
the stage's loop (`FineTuner.train_epoch`): the padded forward without and with `reduce_vocab`,
then the stage's defaults (`reduce_vocab` and `unpad`), on the benchmark's
setup (first 4,000 sentences, tiny random-init model with 30,522 embedding rows, batch 32).

    OMP_NUM_THREADS=1 PYTHONPATH=src python docs/results/cpu-finetune-bench/profile_step.py

Prints, per setting, the ops with the largest self CPU time and their share of the epoch's total,
and the share of the parts a step is made of (optimizer step, gradient clipping, embedding backward).
"""

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.finetune_bench import parse_args, prepare_task, task_settings
from bertflow.finetune import TASKS, FineTuner, FinetuneSettings, load_task_model
from bertflow.unpadding import unpad_encoder
from bertflow.vocab_reduction import VocabReduction

torch.set_num_threads(1)
args = parse_args(["--tasks", "sst2", "--sst2-dir", "/work/shared/data/sst2", "--lr", "1e-3", "--epochs", "1",
                   *sys.argv[1:]])
PARTS = {  # profiler labels -> what they are
    "Optimizer.step#AdamW.step": "AdamW step (fused)",
    "aten::_foreach_norm": "gradient clipping: norms",
    "aten::_foreach_mul_": "gradient clipping: scaling",
    "aten::embedding_dense_backward": "embedding backward (dense gradient)",
}


def one_epoch(files: dict, reduce_vocab: bool, unpad: bool) -> None:
    settings = FinetuneSettings.from_config({**task_settings("sst2", args), "reduce_vocab": reduce_vocab})
    torch.manual_seed(1)
    model, tokenizer, _ = load_task_model("sst2", files["model_dir"], settings.max_length)
    task = TASKS["sst2"](tokenizer, settings, files["train_file"], files["validation_file"])
    features = task.build_features()
    reduction = None
    if reduce_vocab:
        used = torch.cat([features["train"]["input_ids"].flatten(), features["eval"]["input_ids"].flatten()]).unique()
        reduction = VocabReduction(model, used.tolist(), tokenizer.all_special_ids)
        reduction.apply()
    if unpad:
        unpad_encoder(model, pooled_only=True)
    tuner = FineTuner(task, model, settings, features=features, device="cpu", seed=1, reduction=reduction)
    tuner.train_epoch(0)  # warm-up epoch (allocator), not profiled
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tuner.train_epoch(1)
    wall = time.perf_counter() - started
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    params = sum(p.numel() for p in model.parameters())
    print(f"\nreduce_vocab={reduce_vocab} unpad={unpad}: {params:,} parameters, {tuner.steps_per_epoch} steps, "
          f"{wall:.2f} s profiled epoch ({wall / tuner.steps_per_epoch * 1e3:.1f} ms/step, profiler overhead included)")
    for key, label in PARTS.items():
        match = [e for e in events if e.key == key]
        if match:
            print(f"  {label:40s} {match[0].cpu_time_total / 1e3:8.1f} ms total  "
                  f"{match[0].cpu_time_total / total:6.1%} of self CPU time")
    print("  top ops by self CPU time:")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]:
        print(f"    {e.key:45s} {e.self_cpu_time_total / 1e3:8.1f} ms  {e.self_cpu_time_total / total:6.1%}  "
              f"calls {e.count}")


with tempfile.TemporaryDirectory() as tmp:
    files = prepare_task("sst2", args, Path(tmp))
    for reduce_vocab, unpad in ((False, False), (True, False), (True, True)):
        one_epoch(files, reduce_vocab, unpad)
