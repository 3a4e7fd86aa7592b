"""Data-path benchmark: bertflow's data stages next to a run_mlm.py-style baseline, same corpus.

    python -m benchmarks.data_bench --shards '../shared/data/wikibooks/*.txt.xz' \\
        --sizes-mb 50 200 --repeats 2 --threads 2 --out docs/results/cpu-data-path

For each corpus size it cuts a plain-text corpus (whole documents) from the shards, repeating them
when the size asks for more text than they hold. Then, for each repeat, it runs in fresh processes:
ours (prepare_corpus, train_tokenizer, tokenize_corpus) and the baseline (transformers'
run_mlm.py recipe: `load_dataset("text")`, `map(tokenize, batched, num_proc)`, `map(group_texts)`,
`save_to_disk`, on our tokenizer and our train/validation split), alternating A B A B. Each
process is measured by the parent: wall time, CPU time (user + system, its reaped children
included) and peak RSS (`ru_maxrss` from wait4: the largest single process, so the baseline's
num_proc workers are not summed). Output: `data_bench.json` (every run) and `data_bench.md` (medians,
min-max, and the baseline/ours ratio per pair) in --out.
"""

from __future__ import annotations

import argparse
import glob
import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository on sys.path, to import `benchmarks`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bertflow.errors import ConfigError
from benchmarks import child_env

OUR_STAGES = ("prepare_corpus", "train_tokenizer", "tokenize_corpus")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ---- corpus


def build_corpus(shards: list[str], size_bytes: int, out: Path) -> Path:
    """Whole documents from the shards, in order (cycling through them again when needed),
    until the file holds `size_bytes`."""
    if out.is_file() and out.stat().st_size >= size_bytes:
        return out
    written = 0
    with open(out, "w", encoding="utf-8") as sink:
        while written < size_bytes:
            for shard in shards:
                opener = lzma.open if shard.endswith(".xz") else open
                with opener(shard, "rt", encoding="utf-8") as source:
                    for line in source:
                        sink.write(line)
                        written += len(line.encode())
                        if written >= size_bytes and not line.strip():
                            return out
                if not line.endswith("\n"):
                    sink.write("\n")
                sink.write("\n")  # a shard ends a document
    return out


# ---- the measured stages (run in a child process: `--stage NAME`)


def run_stage(args) -> dict:
    work = Path(args.work)
    corpus_dir, tokenizer_dir = work / "ours" / "corpus", work / "ours" / "tokenizer"
    if args.stage == "prepare_corpus":
        from bertflow.corpus import prepare_corpus

        stats = prepare_corpus(source="local", train_files=[args.corpus], out_train=str(corpus_dir / "train.txt"),
                               out_validation=str(corpus_dir / "validation.txt"), out_stats=str(corpus_dir / "stats.json"),
                               validation_fraction=0.01, seed=1)
        return {"output": str(corpus_dir), "words": stats["train_words"] + stats["validation_words"]}
    if args.stage == "train_tokenizer":
        from bertflow.tokenizer import train_tokenizer

        train_tokenizer(train_file=str(corpus_dir / "train.txt"), validation_file=str(corpus_dir / "validation.txt"),
                        out_dir=str(tokenizer_dir), out_report=str(work / "ours" / "tokenizer.json"),
                        vocab_size=args.vocab_size, lowercase=True, min_frequency=2, special_tokens=SPECIAL,
                        model_max_length=512, max_train_bytes=args.max_train_bytes, seed=1)
        return {"output": str(tokenizer_dir)}
    if args.stage == "tokenize_corpus":
        from bertflow.blocks import build_blocks

        meta = build_blocks(tokenizer_dir=str(tokenizer_dir), train_file=str(corpus_dir / "train.txt"),
                            validation_file=str(corpus_dir / "validation.txt"), seq_len=args.seq_len,
                            out_dir=str(work / "ours" / "blocks"))
        return {"output": str(work / "ours" / "blocks"), "tokens": meta["train_text_tokens"] + meta["validation_text_tokens"],
                "blocks": meta["train_blocks"] + meta["validation_blocks"]}
    if args.stage == "baseline":
        return run_mlm_baseline(corpus_dir, tokenizer_dir, work / "baseline", args.seq_len, args.threads)
    raise ConfigError(f"--stage: unknown stage {args.stage!r}")


def run_mlm_baseline(corpus_dir: Path, tokenizer_dir: Path, out: Path, seq_len: int, num_proc: int) -> dict:
    """transformers' examples/pytorch/language-modeling/run_mlm.py data path (line_by_line=False)."""
    from itertools import chain

    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    raw = datasets.load_dataset("text", data_files={"train": str(corpus_dir / "train.txt"),
                                                    "validation": str(corpus_dir / "validation.txt")},
                                cache_dir=str(out / "cache"))

    def tokenize_function(examples):
        return tokenizer(examples["text"], return_special_tokens_mask=True)

    tokenized = raw.map(tokenize_function, batched=True, num_proc=num_proc, remove_columns=["text"])

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total = len(concatenated[next(iter(examples))]) // seq_len * seq_len
        return {k: [t[i : i + seq_len] for i in range(0, total, seq_len)] for k, t in concatenated.items()}

    tokens = sum(len(ids) for split in tokenized.values() for ids in split["input_ids"])
    grouped = tokenized.map(group_texts, batched=True, num_proc=num_proc)
    grouped.save_to_disk(str(out / "grouped"))
    return {"output": str(out), "tokens": tokens, "blocks": sum(len(split) for split in grouped.values())}


# ---- the parent: fresh processes, measured by wait4


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(stage: str, args, work: Path, corpus: Path) -> dict:
    result_file = work / f"{stage}.result.json"
    command = [sys.executable, "-m", "benchmarks.data_bench", "--stage", stage, "--work", str(work),
               "--corpus", str(corpus), "--seq-len", str(args.seq_len), "--vocab-size", str(args.vocab_size),
               "--threads", str(args.threads), "--result", str(result_file)]
    if args.max_train_bytes:
        command += ["--max-train-bytes", str(args.max_train_bytes)]
    env = child_env({**os.environ, "RAYON_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": "1",
                     "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"stage {stage} failed with exit code {process.returncode}")
    result = json.loads(result_file.read_text())
    row = {"stage": stage, "wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "output_bytes": folder_bytes(Path(result["output"]))}
    if "tokens" in result:
        row.update(tokens=result["tokens"], blocks=result["blocks"], tokens_per_s=round(result["tokens"] / wall))
    print(json.dumps(row), flush=True)
    return row


def bench_size(size_mb: int, args, root: Path) -> list[dict]:
    corpus = build_corpus(args.shard_files, size_mb * 10**6, root / f"corpus-{size_mb}MB.txt")
    rows = []
    for repeat in range(args.repeats):
        work = root / f"{size_mb}MB"
        shutil.rmtree(work, ignore_errors=True)
        for stage in OUR_STAGES:
            rows.append({"size_mb": size_mb, "repeat": repeat, "side": "ours", **measure(stage, args, work, corpus)})
        if not args.no_baseline:
            rows.append({"size_mb": size_mb, "repeat": repeat, "side": "baseline", **measure("baseline", args, work, corpus)})
    return rows


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}–{max(values):,.1f})"


def markdown(rows: list[dict], args) -> str:
    """The table of medians (min-max) per size and stage, then the baseline/ours ratios per pair."""
    lines = ["| corpus | stage | wall s | CPU s | peak RSS MiB | output MB | tokens/s |", "|---|---|---:|---:|---:|---:|---:|"]
    for size in args.sizes_mb:
        for stage in (*OUR_STAGES, "baseline"):
            runs = [r for r in rows if r["size_mb"] == size and r["stage"] == stage]
            if not runs:
                continue
            tps = spread([r["tokens_per_s"] for r in runs]) if "tokens_per_s" in runs[0] else ""
            name = "baseline (run_mlm.py: map + group_texts + save_to_disk)" if stage == "baseline" else stage
            lines.append(f"| {size} MB | {name} | {spread([r['wall_s'] for r in runs])} | {spread([r['cpu_s'] for r in runs])} "
                         f"| {spread([r['peak_rss_mib'] for r in runs])} | {statistics.median(r['output_bytes'] for r in runs) / 1e6:,.0f} | {tps} |")
    lines += ["", "Tokenization, baseline / ours per repeat (pairs run back to back):", ""]
    for size in args.sizes_mb:
        pairs = [(b, o) for b in rows for o in rows if b["size_mb"] == o["size_mb"] == size and b["repeat"] == o["repeat"]
                 and b["stage"] == "baseline" and o["stage"] == "tokenize_corpus"]
        if pairs:
            lines.append(f"- {size} MB: CPU ratio {spread([b['cpu_s'] / o['cpu_s'] for b, o in pairs])}, "
                         f"wall ratio {spread([b['wall_s'] / o['wall_s'] for b, o in pairs])}, "
                         f"peak RSS ratio {spread([b['peak_rss_mib'] / o['peak_rss_mib'] for b, o in pairs])}, "
                         f"output bytes ratio {spread([b['output_bytes'] / o['output_bytes'] for b, o in pairs])}")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", default="../shared/data/wikibooks/*.txt.xz", help="glob of the source shards")
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="tokenizer threads (ours) = num_proc (baseline)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--max-train-bytes", type=int, default=50_000_000,
                        help="the tokenizer's sample cap (tokenizer.max_train_bytes; its default)")
    parser.add_argument("--no-baseline", action="store_true", help="our stages only (a quick memory-flatness check)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", default="docs/results/cpu-data-path")
    parser.add_argument("--from-json", nargs="+", help="only print the tables of earlier data_bench.json files")
    # child-process side
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.from_json:
        return args
    if not args.stage:
        args.shard_files = sorted(glob.glob(args.shards))
        if not args.shard_files:
            raise ConfigError(f"--shards: {args.shards!r} matches no file (working directory {os.getcwd()})")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(Path(path).read_text())["rows"]]
        args.sizes_mb = sorted({row["size_mb"] for row in rows})
        print(markdown(rows, args))
        return
    if args.stage:
        Path(args.result).write_text(json.dumps(run_stage(args)))
        return
    import tempfile

    root = Path(args.workdir or tempfile.mkdtemp(prefix="data_bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in args.sizes_mb:
            rows += bench_size(size, args, root)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_bench.json").write_text(json.dumps({"argv": sys.argv, "rows": rows}, indent=2) + "\n")
    (out / "data_bench.md").write_text(markdown(rows, args))
    print(markdown(rows, args))


if __name__ == "__main__":
    main()
