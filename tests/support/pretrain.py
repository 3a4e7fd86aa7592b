"""Block folders in the block-file format, and a small tokenizer + blocks built without the workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertflow import block_files


def write_block_folder(root: Path, splits: dict[str, np.ndarray], *, seq_len: int, vocab_size: int,
                       fingerprint: str = "test") -> Path:
    """A blocks folder from flat id streams per split (the remainder of each is dropped)."""
    block_files.write_block_folder(root, {split: [ids] for split, ids in splits.items()}, seq_len=seq_len,
                                   vocab_size=vocab_size, fingerprint=fingerprint)
    return root


def random_block_folder(root: Path, *, train_blocks: int, validation_blocks: int, seq_len: int = 16,
                        vocab_size: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    return write_block_folder(root, {"train": rng.integers(5, vocab_size, train_blocks * seq_len),
                                     "validation": rng.integers(5, vocab_size, validation_blocks * seq_len)},
                              seq_len=seq_len, vocab_size=vocab_size)


def generated_tokenizer(root: Path, *, sentences: int, validation_lines: int, name: str = "tokenizer") -> list[str]:
    """A 300-token WordPiece tokenizer in root/name, trained on root/train.txt of the generated corpus
    (root/valid.txt holds its last `validation_lines` lines); returns the corpus lines."""
    from bertflow import synthetic
    from bertflow.tokenizer import train_tokenizer

    text = synthetic.generate_corpus(sentences, seed=2)
    (root / "train.txt").write_text("\n".join(text[:-validation_lines]))
    (root / "valid.txt").write_text("\n".join(text[-validation_lines:]))
    train_tokenizer(train_file=str(root / "train.txt"), validation_file=str(root / "valid.txt"),
                    out_dir=str(root / name), out_report=str(root / "report.json"), vocab_size=300,
                    lowercase=True, min_frequency=2, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                    model_max_length=512)
    return text


def tokenized_corpus(root: Path, *, sentences: int = 1500, seq_len: int = 32) -> Path:
    """root/tokenizer and root/blocks from the generated corpus: what the pretrain stage reads."""
    from bertflow.blocks import tokenizer_fingerprint
    from bertflow.tokenizer import load_tokenizer

    text = generated_tokenizer(root, sentences=sentences, validation_lines=60)
    tokenizer = load_tokenizer(str(root / "tokenizer"))
    streams = {split: np.concatenate([np.asarray(ids) for ids in tokenizer(text_part)["input_ids"]])
               for split, text_part in (("train", text[:-60]), ("validation", text[-60:]))}
    write_block_folder(root / "blocks", streams, seq_len=seq_len, vocab_size=len(tokenizer),
                       fingerprint=tokenizer_fingerprint(str(root / "tokenizer")))
    return root
