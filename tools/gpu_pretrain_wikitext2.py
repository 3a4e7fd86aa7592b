"""Real-size check on a GPU: pretrain on WikiText-2 blocks built by the workflow, via the stage entry.

    PYTHONPATH=src python tools/gpu_pretrain_wikitext2.py --results results/wikitext2 --preset small \
        --epochs 20 --out OUTDIR

Needs results/wikitext2/{tokenizer,blocks} from `snakemake --configfile config/wikitext2.yaml ...`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bertflow.pretrain import pretrain


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default="results/wikitext2")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    pretrain(
        tokenizer_dir=f"{args.results}/tokenizer",
        blocks_dir=f"{args.results}/blocks",
        outputs={"model": str(out / "model"), "perplexity": str(out / "perplexity.csv"),
                 "plot": str(out / "perplexity.png"), "info": str(out / "train_info.json")},
        train={"preset": args.preset, "seq_len": 128, "epochs": args.epochs, "batch_size": args.batch_size,
               "learning_rate": args.lr, "warmup_ratio": 0.05, "compile": args.compile, "compile_mode": args.compile_mode,
               "log_every_steps": 200},
        device="cuda",
        seed=1234,
        checkpoint_dir=str(out / "checkpoints"),
    )


if __name__ == "__main__":
    main()
