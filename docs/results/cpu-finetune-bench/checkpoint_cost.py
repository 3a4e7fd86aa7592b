"""What a fine-tuning checkpoint costs: its size and the time of one save, per model size.

    OMP_NUM_THREADS=1 PYTHONPATH=src python docs/results/cpu-finetune-bench/checkpoint_cost.py [DIR]

Each preset runs in a fresh process: a BertForSequenceClassification of the preset's shape (vocab
30,522, as BERT's), fused AdamW state made by one step on zero gradients, then the checkpoint the
stage writes (FineTuner.checkpoint: model, optimizer, scheduler, RNG, progress) saved with
`bertflow.checkpoints.save_checkpoint` five times into DIR (default: a folder under the current
one, so the disk results/ lives on). Prints the file size and the median and range of the saves.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = ("tiny", "small", "base")
SAVES = 5


def measure(preset: str, folder: Path) -> dict:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, get_linear_schedule_with_warmup

    from bertflow.checkpoints import rng_state, save_checkpoint
    from bertflow.presets import architecture

    model = BertForSequenceClassification(BertConfig(vocab_size=30522, **architecture(preset)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # AdamW's two moment buffers per parameter, as after any real step
    scheduler = get_linear_schedule_with_warmup(optimizer, 10, 100)
    path, seconds = folder / "last.pt", []
    for _ in range(SAVES):
        started = time.perf_counter()
        save_checkpoint(path, {"fingerprint": "x", "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "rng": rng_state("cpu"),
                               "progress": {"epoch": 1, "history": []}, "threads": torch.get_num_threads()})
        seconds.append(time.perf_counter() - started)
    return {"preset": preset, "parameters": sum(p.numel() for p in model.parameters()),
            "file_mb": path.stat().st_size / 1e6, "save_s": seconds}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], Path(sys.argv[3]))))
        return
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    print(f"load average at start: {os.getloadavg()}")
    for preset in PRESETS:
        with tempfile.TemporaryDirectory(dir=root, prefix="checkpoint-cost-") as folder:
            out = subprocess.run([sys.executable, __file__, "--one", preset, folder], check=True,
                                 capture_output=True, text=True).stdout
        row = json.loads(out.splitlines()[-1])
        s = row["save_s"]
        print(f"{preset:6s} {row['parameters'] / 1e6:6.1f} M parameters  checkpoint {row['file_mb']:7.1f} MB  "
              f"save median {statistics.median(s):.2f} s (range {min(s):.2f}-{max(s):.2f}, {len(s)} saves)")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
