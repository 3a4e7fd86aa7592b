"""Corpus stage: plain-text train/validation files from a generator, local files or a Hub dataset.

Everything streams: lines are read one at a time (plain, .gz, .xz or .bz2 files, or batches of an
on-disk Arrow dataset) and written straight to the split files, so memory does not grow with the
corpus. The output keeps BERT's create_pretraining_data.py layout: one paragraph or sentence per
line, a blank line between documents. When no validation files are given, whole documents go to
validation by a seeded hash of their position, so a document's paragraphs never straddle the split.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import logging
import lzma
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import DataError
from .io import disk_full_guard, write_json
from .provenance import environment_info

log = logging.getLogger(__name__)

OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
# What a corrupt or truncated compressed file raises while it is read (gzip.BadGzipFile and bz2's
# "Invalid data stream" are OSErrors).
READ_ERRORS = (EOFError, lzma.LZMAError, zlib.error, OSError, UnicodeDecodeError)
SPLITS = ("train", "validation")


def download_hub_corpus(name: str, config: str | None, revision: str | None, out_dir: str, **_) -> None:
    """Save a Hub dataset to disk (needs network; the only corpus step that does)."""
    import datasets

    log.info("downloading dataset %s (%s) revision %s", name, config, revision)
    dataset = datasets.load_dataset(name, config, revision=revision)
    dataset.save_to_disk(out_dir)


# ---- Reading: every source becomes a stream of stripped lines, "" marking a document boundary


def bounded_lines(handle, max_chars: int) -> Iterator[str]:
    """Stripped lines of a text stream; a line longer than `max_chars` is cut at its last space
    before the limit (or at the limit when it has none), so one huge line never sits in memory."""
    pending = ""
    while True:
        piece = handle.readline(max_chars - len(pending))
        text = pending + piece
        if not piece:
            if text.strip():
                yield text.strip()
            return
        if text.endswith("\n") or len(text) < max_chars:
            pending = ""
            yield text.strip()
            continue
        cut = text.rfind(" ")
        cut = cut if cut > 0 else len(text)
        pending = text[cut:]
        if text[:cut].strip():
            yield text[:cut].strip()


def read_lines(path: str | os.PathLike, max_chars: int) -> Iterator[str]:
    """Lines of a plain or compressed (.gz/.xz/.bz2, by suffix) UTF-8 file; a blank line ends a
    document, and so does the end of the file. Unreadable data is a DataError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found; fix corpus.local in the config")
    opener = OPENERS.get(path.suffix.lower(), open)
    line_no = 0
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_no, line in enumerate(bounded_lines(handle, max_chars), 1):
                yield line
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: line {first_bad_utf8_line(path, opener)} is not UTF-8 text ({err.reason}); "
                        "convert the file to UTF-8") from None
    except READ_ERRORS as err:
        kind = path.suffix.lstrip(".") or "text"
        raise DataError(
            f"{path}: cannot read past line {line_no} ({type(err).__name__}: {err}); the {kind} file is "
            "corrupt or truncated: fetch it again or drop it from corpus.local"
        ) from None
    yield ""


def first_bad_utf8_line(path: Path, opener) -> int:
    """The 1-based number of the first line that is not UTF-8 (text mode decodes in chunks, so its
    own error position is not a line)."""
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def hub_split(dataset_dir: str, split: str, text_column: str):
    """One split of a saved dataset (memory-mapped Arrow), its split and column checked up front."""
    import datasets

    dataset = datasets.load_from_disk(dataset_dir)
    if split not in dataset:
        raise DataError(f"{dataset_dir}: split {split!r} not found; has {list(dataset)}")
    if text_column not in dataset[split].column_names:
        raise DataError(
            f"{dataset_dir}: column {text_column!r} not in split {split!r} "
            f"(columns {dataset[split].column_names}); set corpus.hub.text_column"
        )
    return dataset[split].select_columns([text_column])


def hub_lines(rows, text_column: str, max_chars: int, batch_size: int = 1000) -> Iterator[str]:
    """Rows of a dataset split, read in batches; each row is a document (a Wikipedia article, a
    book, a WikiText line), its newlines kept as line breaks."""
    for batch in rows.iter(batch_size=batch_size):
        for text in batch[text_column]:
            if text and text.strip():
                yield from bounded_lines(io.StringIO(text), max_chars)
                yield ""


# ---- Writing: the split, counted on the way


def in_validation(document_index: int, fraction: float, seed: int) -> bool:
    """Seeded, stable, order-free choice per document: the same documents are held out on every run."""
    digest = hashlib.blake2b(f"{seed}:{document_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") < fraction * 2**64


class SplitWriter:
    """Streams lines into train/validation text files (`.partial` until `close`) and counts them."""

    def __init__(self, paths: dict[str, str], *, fraction: float, seed: int, one_document_per_line: bool):
        self.paths = {split: Path(path) for split, path in paths.items()}
        self.fraction, self.seed, self.per_line = fraction, seed, one_document_per_line
        self.handles = {}
        for split, path in self.paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handles[split] = open(self._partial(path), "w", encoding="utf-8")
        self.stats = {f"{split}_{what}": 0 for split in SPLITS for what in ("documents", "lines", "words")}
        self.documents = 0
        self.current: str | None = None  # the split of the open document

    @staticmethod
    def _partial(path: Path) -> Path:
        return path.with_name(path.name + ".partial")

    def add(self, line: str, split: str | None = None) -> None:
        """One stripped line; "" ends the document. `split=None` picks it by the document's hash."""
        if not line:
            self.current = None
            return
        if self.current is None:
            self.current = split or ("validation" if in_validation(self.documents, self.fraction, self.seed) else "train")
            self.documents += 1
            if self.stats[f"{self.current}_documents"] and not self.per_line:
                self.handles[self.current].write("\n")
            self.stats[f"{self.current}_documents"] += 1
        self.handles[self.current].write(line + "\n")
        self.stats[f"{self.current}_lines"] += 1
        self.stats[f"{self.current}_words"] += len(line.split())
        if self.per_line:
            self.current = None

    def close(self) -> dict:
        for split, handle in self.handles.items():
            handle.close()
            os.replace(self._partial(self.paths[split]), self.paths[split])
        return self.stats

    def abort(self) -> None:
        for split, handle in self.handles.items():
            handle.close()
            self._partial(self.paths[split]).unlink(missing_ok=True)


def take_lines(lines: Iterable[str], limit: int | None) -> Iterator[str]:
    """At most `limit` text lines (blank ones do not count); None means all."""
    taken = 0
    for line in lines:
        if limit is not None and line and taken >= limit:
            return
        taken += bool(line)
        yield line


def local_lines(files: list[str], max_chars: int) -> Iterator[str]:
    """Lines of several files in order; a file without any text line is an error naming it."""
    for path in files:
        text_lines = 0
        for line in read_lines(path, max_chars):
            text_lines += bool(line)
            yield line
        if not text_lines:
            raise DataError(f"{path}: corpus file has no text lines")


def check_split(stats: dict, source: str, fraction: float, split_off: bool) -> None:
    """A corpus too small to give both splits text fails here, not two stages later."""
    if not stats["train_lines"]:
        documents = stats["train_documents"] + stats["validation_documents"]
        raise DataError(
            f"corpus ({source}): no training text ({documents} document(s) in all); "
            + ("too few documents to split off validation; add text" if split_off else "add text")
        )
    if not stats["validation_lines"]:
        raise DataError(
            f"corpus ({source}): {stats['train_documents']} document(s) and none fell into validation "
            f"(corpus.validation_fraction {fraction}): too few documents to split off validation; add text, "
            "give corpus.local.validation files, or, for a corpus with one document per line and no blank "
            "lines between documents, set corpus.split_unit: line"
        )


def prepare_corpus(
    *,
    source: str,
    out_train: str,
    out_validation: str,
    out_stats: str,
    validation_fraction: float,
    seed: int,
    max_lines: int | None = None,
    max_line_chars: int = 100_000,
    split_unit: str = "document",
    generated: dict | None = None,
    train_files: list[str] | None = None,
    validation_files: list[str] | None = None,
    hub_dir: str | None = None,
    hub_text_column: str = "text",
    hub_splits: tuple[str, str | None] = ("train", "validation"),
) -> dict:
    """Stream the source into `out_train`/`out_validation` and write its line/word/document counts."""
    if source == "generated":
        from .synthetic import generate_corpus

        train, validation, split_unit = generate_corpus(**generated), [], "line"
    elif source == "local":
        train, validation = local_lines(train_files or [], max_line_chars), local_lines(validation_files or [], max_line_chars)
    elif source == "hub":
        splits = [hub_split(hub_dir, split, hub_text_column) for split in hub_splits if split]
        train = hub_lines(splits[0], hub_text_column, max_line_chars)
        validation = hub_lines(splits[1], hub_text_column, max_line_chars) if len(splits) > 1 else []
    else:
        raise DataError(f"corpus.source: unknown source {source!r}")
    split_off = not (validation_files if source == "local" else source == "hub" and hub_splits[1])
    writer = SplitWriter({"train": out_train, "validation": out_validation}, fraction=validation_fraction,
                         seed=seed, one_document_per_line=split_unit == "line")
    folder = Path(out_train).parent
    try:
        with disk_full_guard(folder, "the corpus split"):
            for line in take_lines(train, max_lines):
                writer.add(line, None if split_off else "train")
            writer.add("")
            for line in validation:
                writer.add(line, "validation")
            check_split(writer.stats, source, validation_fraction, split_off)
    except BaseException:
        writer.abort()
        raise
    counts = writer.close()
    stats = {"source": source, **counts, "split": "document hash" if split_off else "given",
             "split_unit": split_unit, "environment": environment_info()}
    write_json(out_stats, stats)
    log.info("corpus: %d train / %d validation lines (%d / %d documents)", counts["train_lines"],
             counts["validation_lines"], counts["train_documents"], counts["validation_documents"])
    return stats
