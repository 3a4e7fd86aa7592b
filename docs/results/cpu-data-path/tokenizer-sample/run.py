"""The tokenizer's sample cap (`tokenizer.max_train_bytes`) against its memory, time and quality.

Trains the WordPiece tokenizer (the train_tokenizer stage's function, vocab 30,522) on seeded
samples of one corpus split made by `benchmarks.data_bench` (its 1 GB corpus), each in a fresh
process, interleaved over the caps, and prints peak RSS (the child's ru_maxrss), CPU seconds and the
stage's quality report on the held-out split (UNK rate, sub-words per word).

    python docs/results/cpu-data-path/tokenizer-sample/run.py CORPUS_DIR --caps 50e6 100e6 300e6 --repeats 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def child(corpus: str, cap: int, out: str) -> None:
    from bertflow.tokenizer import train_tokenizer

    train_tokenizer(train_file=f"{corpus}/train.txt", validation_file=f"{corpus}/validation.txt",
                    out_dir=f"{out}/tokenizer", out_report=f"{out}/report.json", vocab_size=30522, lowercase=True,
                    min_frequency=2, special_tokens=SPECIAL, model_max_length=512, max_train_bytes=cap, seed=1)


def measure(corpus: str, cap: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        process = subprocess.Popen([sys.executable, __file__, corpus, "--child", str(cap), out])
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"cap {cap}: the child failed")
        report = json.loads(Path(out, "report.json").read_text())
    return {"cap_mb": cap / 1e6, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "report": report}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", help="a folder with train.txt and validation.txt")
    parser.add_argument("--caps", type=float, nargs="+", default=[50e6, 100e6, 300e6])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.corpus, int(args.child[0]), args.child[1])
    rows = [measure(args.corpus, int(cap)) for _ in range(args.repeats) for cap in args.caps]
    for row in rows:
        print(json.dumps(row), flush=True)
    print("\n| sample cap | peak RSS MiB | CPU s | sub-words per word | UNK rate |")
    print("|---:|---:|---:|---:|---:|")
    for cap in args.caps:
        group = [r for r in rows if r["cap_mb"] == cap / 1e6]
        quality = group[0]["report"]
        print(f"| {cap / 1e6:,.0f} MB | {statistics.median(r['peak_rss_mib'] for r in group):,.0f} | "
              f"{statistics.median(r['cpu_s'] for r in group):,.1f} | "
              f"{quality['subwords_per_word']:.4f} | {quality['unk_rate']:.5%} |")


if __name__ == "__main__":
    main()
