"""Tokenized-data stage: text -> token ids -> fixed-length packed blocks in flat binary files.

Lines are tokenized with [CLS] ... [SEP] around each, concatenated, and cut into `seq_len`
blocks (remainder dropped), as in transformers' run_mlm.py `group_texts`: no padding at all.
Blocks run across document boundaries, as group_texts and RoBERTa's FULL-SENTENCES packing do.
The text is read in batches of lines (about 256k characters) that go through the fast
tokenizer's Rust batch encoding (its own thread pool), and full blocks are appended to
`{split}.bin` (see block_files.py): memory is bounded by one batch, whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .block_files import BlockFileWriter, open_split, read_meta, token_dtype, write_meta
from .errors import DataError
from .io import disk_full_guard, require_free_disk
from .tokenizer import require_readable_tokenizer

log = logging.getLogger(__name__)

# A batch is cut by characters, not lines: the Rust encodings of a batch take about 100 bytes per
# token, so 1,000 book paragraphs (1 MB) peaked 20 MiB above 1,000 Wikipedia ones (0.4 MB).
BATCH_CHARS = 256 * 1024
# English WordPiece text is about 4-5 characters per token; 3 keeps the disk estimate on the safe side.
BYTES_PER_TOKEN_ESTIMATE = 3


def tokenizer_fingerprint(tokenizer_dir: str) -> str:
    """Hash of the vocabulary: blocks and models must come from the same tokenizer."""
    return hashlib.sha256(Path(tokenizer_dir, "tokenizer.json").read_bytes()).hexdigest()[:16]


def load_backend(tokenizer_dir: str):
    """The saved tokenizer's Rust core (`tokenizer.json`), without transformers: the stage then
    imports neither transformers nor its dependencies (about 250 MiB of RSS)."""
    from tokenizers import Tokenizer

    path = Path(tokenizer_dir, "tokenizer.json")
    if not path.is_file():
        raise DataError(f"{tokenizer_dir}: no tokenizer.json; is this a tokenizer folder from the train_tokenizer rule?")
    require_readable_tokenizer(tokenizer_dir)
    backend = Tokenizer.from_file(str(path))
    backend.no_truncation()  # whole lines, as the transformers call without truncation=True gives
    backend.no_padding()
    return backend


def line_batches(path: str, batch_chars: int = BATCH_CHARS) -> Iterator[list[str]]:
    """Non-blank lines of a text file in lists of about `batch_chars` characters (blank lines only
    separate documents)."""
    batch: list[str] = []
    chars = 0
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            # splitlines also breaks at \u2028, \x0c and friends, as the whole-file reader did
            batch.extend(line for line in raw.splitlines() if line.strip())
            chars += len(raw)
            if chars >= batch_chars:
                yield batch
                batch, chars = [], 0
    if batch:
        yield batch


def encode_ids(backend, lines: list[str], dtype) -> np.ndarray:
    """Token ids of `lines`, [CLS] ... [SEP] around each, concatenated (Rust batch encoding, threaded)."""
    encodings = backend.encode_batch_fast(lines, add_special_tokens=True)
    total = sum(len(encoding) for encoding in encodings)
    return np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=dtype, count=total)


def write_split(backend, text_file: str, writer: BlockFileWriter) -> tuple[int, int]:
    """Stream one text file into `writer`: (blocks written, tokens read)."""
    tokens = 0
    try:
        for batch in line_batches(text_file):
            ids = encode_ids(backend, batch, writer.dtype)
            tokens += len(ids)
            writer.append(ids)
    except BaseException:
        writer.abort()
        raise
    return writer.close(), tokens


def build_blocks(*, tokenizer_dir: str, train_file: str, validation_file: str, seq_len: int, out_dir: str) -> dict:
    backend = load_backend(tokenizer_dir)
    vocab_size = backend.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size)
    files = {"train": train_file, "validation": validation_file}
    text_bytes = sum(Path(path).stat().st_size for path in files.values())
    require_free_disk(out_dir, text_bytes // BYTES_PER_TOKEN_ESTIMATE * dtype.itemsize, "the token blocks")
    counts = {}
    with disk_full_guard(out_dir, "the token blocks"):
        for split, path in files.items():
            writer = BlockFileWriter(out_dir, split, seq_len=seq_len, dtype=dtype)
            blocks, tokens = write_split(backend, path, writer)
            if not blocks:
                raise DataError(
                    f"{path}: too little text for even one block of {seq_len} tokens ({tokens} tokens); "
                    "add text or lower pretrain.seq_len"
                )
            counts.update({f"{split}_blocks": blocks, f"{split}_text_tokens": tokens})
        meta = {
            "dtype": dtype.str,
            "seq_len": seq_len,
            "vocab_size": vocab_size,
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer_dir),
            **counts,
            "train_tokens": counts["train_blocks"] * seq_len,
        }
        write_meta(out_dir, meta)  # last: a folder without it is incomplete
    log.info("blocks: %s", meta)
    return meta


def text_blocks(tokenizer_dir: str, text_file: str, seq_len: int) -> np.ndarray:
    """In-memory blocks [n, seq_len] (int64) of a small text file, packed as the stage packs them."""
    backend = load_backend(tokenizer_dir)
    parts = [encode_ids(backend, batch, np.int64) for batch in line_batches(text_file)]
    ids = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    n_blocks = len(ids) // seq_len
    return ids[: n_blocks * seq_len].reshape(n_blocks, seq_len)


def load_blocks(blocks_dir: str) -> tuple[dict, dict[str, np.memmap]]:
    """(meta, {split: read-only np.memmap [n_blocks, seq_len]}): nothing is read into RAM here."""
    meta = read_meta(blocks_dir)
    return meta, {split: open_split(blocks_dir, split, meta) for split in ("train", "validation")}
