"""Corpus stage: plain-text train/validation files from a generator, local files or a Hub dataset."""

from __future__ import annotations

import logging
import random
from pathlib import Path

from .errors import DataError
from .io import write_json, write_text
from .provenance import environment_info

log = logging.getLogger(__name__)


def download_hub_corpus(name: str, config: str | None, revision: str | None, out_dir: str, **_) -> None:
    """Save a Hub dataset to disk (needs network; the only corpus step that does)."""
    import datasets

    log.info("downloading dataset %s (%s) revision %s", name, config, revision)
    dataset = datasets.load_dataset(name, config, revision=revision)
    dataset.save_to_disk(out_dir)


def read_text_files(paths: list[str]) -> list[str]:
    """Non-empty, stripped lines of UTF-8 text files; a missing or empty file is an error."""
    lines: list[str] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path}: corpus file not found; fix corpus.local in the config")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err})") from err
        file_lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not file_lines:
            raise DataError(f"{path}: corpus file has no text lines")
        lines.extend(file_lines)
    return lines


def read_hub_split(dataset_dir: str, split: str | None, text_column: str) -> list[str]:
    import datasets

    dataset = datasets.load_from_disk(dataset_dir)
    if split is None:
        return []
    if split not in dataset:
        raise DataError(f"{dataset_dir}: split {split!r} not found; has {list(dataset)}")
    if text_column not in dataset[split].column_names:
        raise DataError(
            f"{dataset_dir}: column {text_column!r} not in split {split!r} "
            f"(columns {dataset[split].column_names}); set corpus.hub.text_column"
        )
    return [t.strip() for t in dataset[split][text_column] if t and t.strip()]


def split_validation(lines: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Fixed, seeded split: the same lines go to validation on every run."""
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(len(lines) * fraction))
    held_out = set(order[:n_valid])
    train = [line for i, line in enumerate(lines) if i not in held_out]
    valid = [line for i, line in enumerate(lines) if i in held_out]
    return train, valid


def prepare_corpus(
    *,
    source: str,
    out_train: str,
    out_validation: str,
    out_stats: str,
    validation_fraction: float,
    seed: int,
    max_lines: int | None = None,
    generated: dict | None = None,
    train_files: list[str] | None = None,
    validation_files: list[str] | None = None,
    hub_dir: str | None = None,
    hub_text_column: str = "text",
    hub_splits: tuple[str, str | None] = ("train", "validation"),
) -> dict:
    if source == "generated":
        from .synthetic import generate_corpus

        train, validation = generate_corpus(**generated), []
    elif source == "local":
        train, validation = read_text_files(train_files or []), read_text_files(validation_files or [])
    elif source == "hub":
        train = read_hub_split(hub_dir, hub_splits[0], hub_text_column)
        validation = read_hub_split(hub_dir, hub_splits[1], hub_text_column)
    else:
        raise DataError(f"corpus.source: unknown source {source!r}")
    if not train:
        raise DataError(f"corpus ({source}): no training text found")
    if max_lines:
        train = train[:max_lines]
    if not validation:
        train, validation = split_validation(train, validation_fraction, seed)
    write_text(out_train, "\n".join(train) + "\n")
    write_text(out_validation, "\n".join(validation) + "\n")
    stats = {
        "source": source,
        "train_lines": len(train),
        "validation_lines": len(validation),
        "train_words": sum(len(line.split()) for line in train),
        "validation_words": sum(len(line.split()) for line in validation),
        "environment": environment_info(),
    }
    write_json(out_stats, stats)
    log.info("corpus: %d train / %d validation lines", len(train), len(validation))
    return stats
