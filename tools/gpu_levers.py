"""Speed of this project's pretraining step on the current device, each lever toggled off in turn.

    PYTHONPATH=src python tools/gpu_levers.py --presets mini small base --seq-len 128 --out levers.json

Uses `bertflow.pretrain.benchmark_steps` (the stage's own step code) on random token blocks.
The side-by-side comparison with the Hugging Face Trainer baseline is `python -m bertflow.train_bench`.
"""

from __future__ import annotations

import argparse
import json

import torch
from transformers import BertConfig

from bertflow.pretrain import benchmark_steps
from bertflow.presets import architecture

LEVERS = {
    "ours (all levers on)": {},
    "eager attention": {"attention": "eager"},
    "fp32 (no bf16 autocast)": {"precision": "fp32"},
    "MLM head at all positions": {"masked_only_head": False},
    "unfused AdamW": {"fused_adamw": False},
    "+ torch.compile": {"compile": True},
    "+ torch.compile reduce-overhead": {"compile": True, "compile_mode": "reduce-overhead"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", nargs="+", default=["mini", "small", "base"])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--out", default="levers.json")
    parser.add_argument("--baseline", action="store_true", help="also time Trainer + the MLM collator")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), help="which rows of LEVERS to run")
    args = parser.parse_args()
    blocks = torch.randint(5, args.vocab, (args.batch_size * (args.steps + 10), args.seq_len))
    results = []
    for preset in args.presets:
        config = BertConfig(vocab_size=args.vocab, pad_token_id=0, **architecture(preset))
        if args.baseline:
            from trainer_baseline import trainer_steps

            run = trainer_steps(blocks, config, steps=args.steps, batch_size=args.batch_size,
                                bf16=torch.cuda.is_available())
            row = {"preset": preset, "lever": "baseline: Trainer + MLM collator", "tokens_per_s": run["tokens_per_s"],
                   "peak_memory_gib": (run["peak_memory_bytes"] or 0) / 2**30, "final_loss": run["final_loss"],
                   "device": "cuda" if torch.cuda.is_available() else "cpu", "attention": run["attention"]}
            results.append(row)
            print(f"{preset:6s} {row['lever']:28s} {row['tokens_per_s']:>12,.0f} tok/s  "
                  f"{row['peak_memory_gib']:6.2f} GiB  loss {row['final_loss']:.3f}", flush=True)
        for lever, overrides in ((name, LEVERS[name]) for name in args.levers):
            run = benchmark_steps(blocks, config, steps=args.steps, batch_size=args.batch_size, seed=0,
                                  device="auto", **{"precision": "auto", **overrides})
            row = {"preset": preset, "lever": lever, "tokens_per_s": run["tokens_per_s"],
                   "peak_memory_gib": run["peak_memory_bytes"] / 2**30, "final_loss": run["final_loss"],
                   "device": run["device"], "precision": run["precision"]}
            results.append(row)
            print(f"{preset:6s} {lever:28s} {row['tokens_per_s']:>12,.0f} tok/s  "
                  f"{row['peak_memory_gib']:6.2f} GiB  loss {row['final_loss']:.3f}", flush=True)
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
    with open(args.out, "w") as handle:
        json.dump({"args": vars(args), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                   "torch": torch.__version__, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
