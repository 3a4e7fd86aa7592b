"""Same model, blocks, global batch and steps: Trainer + MLM collator vs ours; final losses and speed.

    PYTHONPATH=src python tools/compare_loss.py --blocks results/wikitext2/blocks --preset small \
        --steps 400 --batch-size 128 --out compare.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from transformers import BertConfig

from bertflow.blocks import load_blocks
from bertflow.block_loader import head_rows
from bertflow.pretrain import benchmark_steps
from bertflow.presets import architecture
from trainer_baseline import trainer_steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", default="results/wikitext2/blocks")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--out", default="compare.json")
    parser.add_argument("--tolerance", type=float, default=0.03, help="allowed relative gap of the mean loss")
    args = parser.parse_args()
    meta, blocks = load_blocks(args.blocks)
    train = head_rows(blocks["train"], None)
    config = BertConfig(vocab_size=meta["vocab_size"], pad_token_id=0, **architecture(args.preset))
    bf16 = torch.cuda.is_available()
    runs = {"baseline (Trainer + collator)": trainer_steps(train, config, steps=args.steps, batch_size=args.batch_size,
                                                           learning_rate=args.lr, bf16=bf16)}
    for name, extra in (("ours", {}), ("ours + compile reduce-overhead", {"compile": True, "compile_mode": "reduce-overhead"})):
        run = benchmark_steps(train, config, steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                              device="auto", **extra)
        run["mean_loss"] = sum(run["losses"]) / len(run["losses"])  # Trainer reports the run's mean loss
        runs[name] = run
    runs["baseline (Trainer + collator)"]["mean_loss"] = runs["baseline (Trainer + collator)"]["final_loss"]
    base = runs["baseline (Trainer + collator)"]["tokens_per_s"]
    for name, run in runs.items():
        print(f"{name:32s} {run['tokens_per_s']:>12,.0f} tok/s  x{run['tokens_per_s'] / base:4.2f}  "
              f"mean training loss {run['mean_loss']:.4f}")
    reference = runs["baseline (Trainer + collator)"]["mean_loss"]
    for name, run in runs.items():
        run["relative_loss_gap"] = (run["mean_loss"] - reference) / reference
        verdict = "within" if abs(run["relative_loss_gap"]) <= args.tolerance else "OUTSIDE"
        print(f"{name:32s} loss gap {run['relative_loss_gap']:+.2%} ({verdict} the {args.tolerance:.0%} tolerance)")
        run.pop("losses", None)
    json.dump({"args": vars(args), "runs": runs}, open(args.out, "w"), indent=2, default=str)


if __name__ == "__main__":
    main()
