"""Pretraining start-up against corpus size: open the blocks, build the trainer, run the first step.

Writes random block folders (block-file format, uint16) of each size once, then runs each size in a
fresh process, interleaved (A B A B ...), and prints the median and min-max of the seconds from
opening the blocks to the end of the first optimizer step, split into opening the blocks,
building the trainer (transformers' model classes imported, model built, evaluation masks drawn)
and the first step, and the child's peak RSS.

    python -m benchmarks.pretrain_startup --tokens 2e6 2.5e8 --repeats 3 --workdir /tmp/startup
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository on sys.path, to import `benchmarks`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from benchmarks import child_env


def make_folder(root: Path, tokens: int, seq_len: int, vocab_size: int) -> Path:
    """Random blocks of `tokens` training tokens (and a validation split of 5 %, at most 2 M), once."""
    from bertflow.block_files import token_dtype, write_block_folder

    if (root / "blocks_meta.json").is_file():
        return root
    rng, dtype = np.random.default_rng(0), token_dtype(vocab_size)

    def chunks(n: int):  # bounded memory while writing
        for start in range(0, n, 10_000_000):
            yield rng.integers(5, vocab_size, min(10_000_000, n - start), dtype=dtype)

    write_block_folder(root, {"train": chunks(tokens), "validation": chunks(min(tokens // 20, 2_000_000))},
                       seq_len=seq_len, vocab_size=vocab_size, fingerprint="-")
    return root


def child(folder: str, device: str) -> None:
    """One measurement: load_blocks -> Pretrainer -> first optimizer step (what the stage does first)."""
    import torch

    from bertflow.blocks import load_blocks
    from bertflow.pretrain import Pretrainer, Settings, Vocab

    start = time.perf_counter()
    meta, blocks = load_blocks(folder)
    opened = time.perf_counter()
    settings = Settings.from_config(dict(preset="tiny", seq_len=meta["seq_len"], batch_size=32, epochs=1, compile=False,
                                         seed=0))
    trainer = Pretrainer(settings, vocab=Vocab(meta["vocab_size"], 0, 4, (0, 1, 2, 3, 4)), blocks=blocks, meta=meta,
                         device=device, checkpoint_dir="/nonexistent")
    built = time.perf_counter()
    trainer.optimizer_step(0, 0)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    # The trainer's part includes importing transformers (the model classes) and building the model:
    # the same at any corpus size; opening the blocks and the first step are the data's part.
    print(json.dumps({"seconds": end - start, "open_s": opened - start, "trainer_s": built - opened,
                      "first_step_s": end - built, "resident": trainer.loader.resident,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=float, nargs="+", default=[2e6, 2.5e8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", default="/tmp/bertflow-startup")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.device)
    folders = {int(n): make_folder(Path(args.workdir, f"{int(n)}"), int(n), args.seq_len, args.vocab_size)
               for n in args.tokens}
    runs: dict[int, list[dict]] = {n: [] for n in folders}
    for _ in range(args.repeats):
        for n, folder in folders.items():  # interleaved, each in a fresh process
            command = [sys.executable, "-m", "benchmarks.pretrain_startup", "--child", str(folder),
                       "--device", args.device]
            out = subprocess.run(command, capture_output=True, text=True, check=True, env=child_env()).stdout
            runs[n].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'train tokens':>14} {'file MB':>8} {'path':>9} {'start s (median, min-max)':>28} "
          f"{'open s':>7} {'trainer s':>9} {'step s':>7} {'peak RSS MiB':>13}")
    for n, results in runs.items():
        seconds = [r["seconds"] for r in results]
        size = Path(folders[n], "train.bin").stat().st_size / 1e6
        parts = [statistics.median(r[key] for r in results) for key in ("open_s", "trainer_s", "first_step_s")]
        print(f"{n:>14,} {size:>8,.0f} {'resident' if results[0]['resident'] else 'mmap':>9} "
              f"{statistics.median(seconds):>12.2f} ({min(seconds):.2f}-{max(seconds):.2f}) "
              f"{parts[0]:>7.2f} {parts[1]:>9.2f} {parts[2]:>7.2f}"
              f"{statistics.median(r['peak_rss_mib'] for r in results):>14,.0f}")


if __name__ == "__main__":
    main()
