"""On-disk format of packed token blocks: one flat binary file per split plus a JSON index.

`{split}.bin` holds `n_blocks x seq_len` token ids, little-endian, row-major, as uint16 while the
vocabulary fits (ids < 65,536), else uint32 (Megatron's .bin/.idx idea without the per-document
index, which packed MLM blocks do not need). `blocks_meta.json` records the dtype, `seq_len` and
each split's block count; it is written last, so a folder without it (or with a .bin whose size
disagrees with it) is incomplete and is refused. Readers get `np.memmap` views: opening a 100 GB
corpus costs no RAM and no pyarrow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import DataError
from .io import read_json, write_json

META = "blocks_meta.json"
FORMAT = "bertflow-blocks-v1"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def split_path(blocks_dir: str | os.PathLike, split: str) -> Path:
    return Path(blocks_dir, f"{split}.bin")


class BlockFileWriter:
    """Appends full rows of `seq_len` ids to `{split}.bin.partial`; `close()` renames it into place.

    Memory is bounded by what the caller passes to `append` plus one block of carried-over ids.
    """

    def __init__(self, blocks_dir: str | os.PathLike, split: str, *, seq_len: int, dtype: np.dtype):
        self.path = split_path(blocks_dir, split)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_suffix(".bin.partial")
        self.seq_len, self.dtype = seq_len, np.dtype(dtype)
        self.handle = open(self.partial, "wb")
        self.carry = np.empty(0, dtype=self.dtype)
        self.blocks = 0

    def append(self, ids: np.ndarray) -> None:
        """Add a stream of ids; whole blocks are written, the remainder waits for the next call."""
        flat = np.concatenate([self.carry, np.asarray(ids, dtype=self.dtype)])
        full = len(flat) // self.seq_len * self.seq_len
        if full:
            flat[:full].tofile(self.handle)
            self.blocks += full // self.seq_len
        self.carry = flat[full:].copy()

    def close(self) -> int:
        """Drop the last partial block (as run_mlm's group_texts does) and publish the file."""
        self.handle.close()
        os.replace(self.partial, self.path)
        return self.blocks

    def abort(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


def write_meta(blocks_dir: str | os.PathLike, meta: dict) -> None:
    write_json(Path(blocks_dir, META), {"format": FORMAT, **meta})


def write_block_folder(blocks_dir: str | os.PathLike, splits: dict[str, Iterable[np.ndarray]], *, seq_len: int,
                       vocab_size: int, fingerprint: str) -> dict:
    """A whole blocks folder from id streams, each split's given as chunks appended in order (the
    remainder dropped), its meta written last; returns the meta. For blocks made without the
    tokenize_corpus stage (benchmarks, tests): it records no tokenizer counts of the text."""
    dtype = token_dtype(vocab_size)
    counts = {}
    for split, chunks in splits.items():
        writer = BlockFileWriter(blocks_dir, split, seq_len=seq_len, dtype=dtype)
        for ids in chunks:
            writer.append(ids)
        counts[f"{split}_blocks"] = writer.close()
    meta = {"dtype": dtype.str, "seq_len": seq_len, "vocab_size": vocab_size, "tokenizer_fingerprint": fingerprint,
            **counts, "train_tokens": counts["train_blocks"] * seq_len}
    write_meta(blocks_dir, meta)
    return meta


def read_meta(blocks_dir: str | os.PathLike) -> dict:
    path = Path(blocks_dir, META)
    if not path.is_file():
        raise DataError(f"{blocks_dir}: no {META}; the blocks are missing or incomplete, rerun the tokenize_corpus rule")
    meta = read_json(path)
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}; rerun the tokenize_corpus rule")
    return meta


def open_split(blocks_dir: str | os.PathLike, split: str, meta: dict) -> np.memmap:
    """Read-only memory map of one split, shape [n_blocks, seq_len]; its size is checked first."""
    path = split_path(blocks_dir, split)
    n_blocks, seq_len, dtype = meta[f"{split}_blocks"], meta["seq_len"], np.dtype(meta["dtype"])
    expected = n_blocks * seq_len * dtype.itemsize
    if not path.is_file():
        raise DataError(f"{path}: missing; rerun the tokenize_corpus rule")
    if path.stat().st_size != expected:
        raise DataError(
            f"{path}: {path.stat().st_size} bytes, expected {expected} ({n_blocks} blocks x {seq_len} x "
            f"{dtype.itemsize} B) from {META}; the file is truncated or stale, rerun the tokenize_corpus rule"
        )
    return np.memmap(path, dtype=dtype, mode="r", shape=(n_blocks, seq_len))
