"""Tokenized-data stage: text -> token ids -> fixed-length packed blocks saved with `datasets`.

Lines are tokenized with [CLS] ... [SEP] around each, concatenated, and cut into `seq_len`
blocks (remainder dropped), as in transformers' run_mlm.py `group_texts`: no padding at all.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from .errors import DataError
from .io import read_json, write_json
from .tokenizer import load_tokenizer

log = logging.getLogger(__name__)

META = "blocks_meta.json"


def tokenizer_fingerprint(tokenizer_dir: str) -> str:
    """Hash of the vocabulary: blocks and models must come from the same tokenizer."""
    return hashlib.sha256(Path(tokenizer_dir, "tokenizer.json").read_bytes()).hexdigest()[:16]


def pack(token_lists: list[list[int]], seq_len: int) -> list[list[int]]:
    flat = [tok for tokens in token_lists for tok in tokens]
    n_blocks = len(flat) // seq_len
    return [flat[i * seq_len : (i + 1) * seq_len] for i in range(n_blocks)]


def tokenize_lines(tokenizer, path: str, batch: int = 1000) -> list[list[int]]:
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    ids: list[list[int]] = []
    for start in range(0, len(lines), batch):
        ids.extend(tokenizer(lines[start : start + batch], add_special_tokens=True)["input_ids"])
    return ids


def build_blocks(*, tokenizer_dir: str, train_file: str, validation_file: str, seq_len: int, out_dir: str) -> dict:
    import datasets
    import numpy as np

    tokenizer = load_tokenizer(tokenizer_dir)
    splits = {}
    for split, path in (("train", train_file), ("validation", validation_file)):
        blocks = pack(tokenize_lines(tokenizer, path), seq_len)
        if not blocks:
            raise DataError(
                f"{path}: too little text for even one block of {seq_len} tokens; "
                "add text or lower pretrain.seq_len"
            )
        dtype = np.uint16 if len(tokenizer) < 2**16 else np.int32
        splits[split] = datasets.Dataset.from_dict(
            {"input_ids": np.asarray(blocks, dtype=dtype)},
            features=datasets.Features(
                {"input_ids": datasets.Sequence(datasets.Value(np.dtype(dtype).name), length=seq_len)}
            ),
        )
    datasets.DatasetDict(splits).save_to_disk(out_dir)
    meta = {
        "seq_len": seq_len,
        "vocab_size": len(tokenizer),
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer_dir),
        "train_blocks": len(splits["train"]),
        "validation_blocks": len(splits["validation"]),
        "train_tokens": len(splits["train"]) * seq_len,
    }
    write_json(Path(out_dir, META), meta)
    log.info("blocks: %s", meta)
    return meta


def load_blocks(blocks_dir: str):
    """(meta, {split: array [n_blocks, seq_len]}): read-only memory maps of a block-file folder
    (`bertflow.block_files`); a folder of the older `datasets` layout is read into numpy arrays."""
    from .block_files import open_split, read_meta

    meta_path = Path(blocks_dir, META)
    if not meta_path.is_file():
        raise DataError(f"{blocks_dir}: no {META}; rebuild it with the tokenize_corpus rule")
    if "format" in read_json(meta_path):
        meta = read_meta(blocks_dir)
        return meta, {split: open_split(blocks_dir, split, meta) for split in ("train", "validation")}
    import datasets

    data = datasets.load_from_disk(blocks_dir).with_format("numpy")
    return read_json(meta_path), {split: data[split][:]["input_ids"] for split in data}
