"""The streaming data path: corpus formats and split, tokenizer sampling, block files, bad input.

Small corpora only: the generated one and a slice of the wikibooks shards (skipped when
../shared/data is absent). Speed and memory are measured by `python -m benchmarks.data_bench`.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import json
import lzma
import os
import random
from pathlib import Path

import numpy as np
import pytest

from support.workflow import REPO

from bertflow import corpus, synthetic
from bertflow.block_files import BlockFileWriter
from bertflow.blocks import build_blocks, line_batches, load_blocks
from bertflow.errors import DataError, ResourceError
from bertflow.tokenizer import load_tokenizer, sampled_lines, train_tokenizer

# The real-data folder sits beside the clone (../shared/data); BERTFLOW_SHARED_DATA points elsewhere.
WIKIBOOKS = Path(os.environ.get("BERTFLOW_SHARED_DATA", REPO.parent / "shared" / "data")) / "wikibooks"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ---- helpers


def old_blocks(tokenizer, path: Path, seq_len: int) -> list[list[int]]:
    """The path before streaming, kept as the reference: whole file, per-batch lists, then pack."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids: list[list[int]] = []
    for start in range(0, len(lines), 1000):
        ids.extend(tokenizer(lines[start : start + 1000], add_special_tokens=True)["input_ids"])
    flat = [tok for tokens in ids for tok in tokens]
    return [flat[i * seq_len : (i + 1) * seq_len] for i in range(len(flat) // seq_len)]


def wikibooks_slice(out: Path, chars: int) -> Path:
    """About `chars` characters from the start of a Wikipedia and a Gutenberg shard, whole lines."""
    if not WIKIBOOKS.is_dir():
        pytest.skip(f"{WIKIBOOKS} absent (the shared real-data folder beside the clone; or set BERTFLOW_SHARED_DATA)")
    lines = []
    for shard in ("enwiki-2015-00-of-08.txt.xz", "gutenberg-00-of-02.txt.xz"):
        taken = 0
        with lzma.open(WIKIBOOKS / shard, "rt", encoding="utf-8") as handle:
            for line in handle:
                lines.append(line)
                taken += len(line)
                if taken > chars // 2 and not line.strip():
                    break
    out.write_text("".join(lines), encoding="utf-8")
    return out


def documents_text(n_docs: int) -> str:
    """Documents in create_pretraining_data.py format; every paragraph names its document."""
    return "\n".join(
        "".join(f"doc{d} paragraph{p} has some words in it\n" for p in range(1 + d % 3)) for d in range(n_docs)
    )


def prepare(tmp_path: Path, files: list[Path], **kwargs) -> dict:
    out = tmp_path / "corpus"
    return corpus.prepare_corpus(source="local", train_files=[str(f) for f in files], out_train=str(out / "train.txt"),
                                 out_validation=str(out / "validation.txt"), out_stats=str(out / "stats.json"),
                                 validation_fraction=kwargs.pop("validation_fraction", 0.1), seed=kwargs.pop("seed", 5),
                                 **kwargs)


def train_small_tokenizer(tmp_path: Path, text: Path, vocab_size: int = 400, **kwargs) -> Path:
    out = tmp_path / "tok"
    train_tokenizer(train_file=str(text), validation_file=str(text), out_dir=str(out),
                    out_report=str(tmp_path / "tok.json"), vocab_size=vocab_size, lowercase=True, min_frequency=2,
                    special_tokens=SPECIAL, model_max_length=512, **kwargs)
    return out


# ---- identical blocks


@pytest.fixture(scope="module")
def fixture_text(tmp_path_factory) -> Path:
    """Generated text plus odd lines: blank, indented, a line break inside a line (\\u2028), accents."""
    root = tmp_path_factory.mktemp("text")
    lines = synthetic.generate_corpus(1500, seed=2)
    lines[10:10] = ["", "   indented line  ", "café naïve résumé", "split\u2028inside a line", "\t"]
    path = root / "train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("seq_len", [32, 128])
def test_streamed_blocks_are_identical_to_the_old_path(fixture_text, tmp_path, seq_len):
    tok_dir = train_small_tokenizer(tmp_path, fixture_text)
    meta = build_blocks(tokenizer_dir=str(tok_dir), train_file=str(fixture_text), validation_file=str(fixture_text),
                        seq_len=seq_len, out_dir=str(tmp_path / "blocks"))
    meta, blocks = load_blocks(str(tmp_path / "blocks"))
    expected = old_blocks(load_tokenizer(str(tok_dir)), fixture_text, seq_len)
    assert isinstance(blocks["train"], np.memmap) and blocks["train"].dtype == np.uint16
    assert blocks["train"].tolist() == expected and meta["train_blocks"] == len(expected) > 10
    assert meta["vocab_size"] == len(load_tokenizer(str(tok_dir)))
    assert not list((tmp_path / "blocks").glob("*.partial"))


def test_wikibooks_slice_blocks_are_identical_to_the_old_path(tmp_path):
    text = wikibooks_slice(tmp_path / "wiki.txt", 400_000)
    tok_dir = train_small_tokenizer(tmp_path, text, vocab_size=2000)
    build_blocks(tokenizer_dir=str(tok_dir), train_file=str(text), validation_file=str(text), seq_len=128,
                 out_dir=str(tmp_path / "blocks"))
    _, blocks = load_blocks(str(tmp_path / "blocks"))
    assert blocks["validation"].tolist() == old_blocks(load_tokenizer(str(tok_dir)), text, 128)


def test_line_batches_are_cut_by_characters_not_lines(tmp_path):
    # Long book paragraphs and short lines alike: a batch holds about batch_chars of text.
    lines = ["x" * 400] * 50 + ["short"] * 300
    (tmp_path / "t.txt").write_text("\n\n".join(lines) + "\n")
    batches = list(line_batches(str(tmp_path / "t.txt"), batch_chars=2000))
    assert [line for batch in batches for line in batch] == lines, "every non-blank line, in order"
    assert all(sum(len(line) + 2 for line in batch) <= 2000 + 402 for batch in batches)
    assert len(batches[0]) == 5 and max(len(batch) for batch in batches) > 250


def test_block_writer_uses_uint32_above_65536_tokens(tmp_path):
    from bertflow.block_files import token_dtype

    assert token_dtype(30522) == np.uint16 and token_dtype(70000) == np.uint32
    writer = BlockFileWriter(tmp_path, "train", seq_len=4, dtype=token_dtype(70000))
    writer.append(np.arange(69990, 70000))
    assert writer.close() == 2
    assert np.fromfile(tmp_path / "train.bin", dtype="<u4").tolist() == list(range(69990, 69998))


# ---- formats and the split


def test_compressed_shards_read_like_plain_text(tmp_path):
    text = documents_text(60)
    plain = tmp_path / "plain.txt"
    plain.write_text(text, encoding="utf-8")
    prepare(tmp_path / "plain", [plain])
    shards = [tmp_path / "a.txt.gz", tmp_path / "b.txt.xz", tmp_path / "c.txt.bz2"]
    docs = text.split("\n\n")
    for shard, part, opener in zip(shards, (docs[:20], docs[20:40], docs[40:]), (gzip.open, lzma.open, bz2.open)):
        with opener(shard, "wt", encoding="utf-8") as handle:
            handle.write("\n\n".join(part))
    prepare(tmp_path / "shards", shards)
    for name in ("train.txt", "validation.txt"):
        assert (tmp_path / "shards/corpus" / name).read_text() == (tmp_path / "plain/corpus" / name).read_text()


def test_documents_stay_whole_and_the_split_is_stable(tmp_path):
    source = tmp_path / "docs.txt"
    source.write_text(documents_text(300), encoding="utf-8")
    stats = prepare(tmp_path / "a", [source])
    out = tmp_path / "a/corpus"

    def doc_ids(split):
        text = (out / f"{split}.txt").read_text()
        docs = [d.split("\n") for d in text.strip("\n").split("\n\n")]
        assert all(len({line.split()[0] for line in d}) == 1 for d in docs), "a document was cut apart"
        return [d[0].split()[0] for d in docs]

    train, valid = doc_ids("train"), doc_ids("validation")
    assert not set(train) & set(valid) and len(train) + len(valid) == 300
    assert 10 <= len(valid) <= 55  # about 10% of 300
    assert stats["validation_documents"] == len(valid) and stats["train_lines"] + stats["validation_lines"] == 600
    prepare(tmp_path / "b", [source])
    assert (tmp_path / "b/corpus/validation.txt").read_text() == (out / "validation.txt").read_text()
    prepare(tmp_path / "c", [source], seed=6)
    assert (tmp_path / "c/corpus/validation.txt").read_text() != (out / "validation.txt").read_text()


def test_split_by_line_and_max_lines(tmp_path):
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"line{i} text\n" for i in range(400)), encoding="utf-8")
    stats = prepare(tmp_path, [source], split_unit="line", max_lines=200)
    assert stats["train_lines"] + stats["validation_lines"] == 200
    assert stats["train_documents"] == stats["train_lines"] and stats["validation_lines"] > 5
    assert "\n\n" not in (tmp_path / "corpus/train.txt").read_text()


def test_tokenizer_trains_on_a_seeded_sample_of_a_large_text(tmp_path, fixture_text):
    size = fixture_text.stat().st_size
    sample = [line for batch in sampled_lines(str(fixture_text), size // 4, seed=3) for line in batch]
    assert sample == [line for batch in sampled_lines(str(fixture_text), size // 4, seed=3) for line in batch]
    assert 0.15 * size < sum(map(len, sample)) < 0.35 * size
    train_small_tokenizer(tmp_path, fixture_text, max_train_bytes=size // 4, seed=3)
    report = json.loads((tmp_path / "tok.json").read_text())
    assert report["max_train_bytes"] == size // 4 and report["unk_rate"] < 0.05


# ---- bad input


def test_truncated_xz_and_corrupt_gz_name_the_file_and_line(tmp_path):
    rng = random.Random(0)
    text = "".join(" ".join(f"w{rng.randrange(10**6)}" for _ in range(50)) + "\n" for _ in range(3000)).encode()
    truncated = tmp_path / "cut.txt.xz"
    truncated.write_bytes(lzma.compress(text)[:4000])
    with pytest.raises(DataError, match=r"cut\.txt\.xz: cannot read past line \d+ .*corrupt or truncated"):
        prepare(tmp_path, [truncated])
    corrupt = tmp_path / "bad.txt.gz"
    data = bytearray(gzip.compress(text))
    data[200:260] = b"\x00" * 60
    corrupt.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.txt\.gz: cannot read past line \d+"):
        prepare(tmp_path, [corrupt])
    assert not list((tmp_path / "corpus").glob("*"))  # nothing half-written kept


def test_not_utf8_and_missing_files_name_the_file(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"fine line\n\nthird\ncaf\xe9\n" + b"more\n" * 5000)
    with pytest.raises(DataError, match=r"latin\.txt: line 4 is not UTF-8 text"):
        prepare(tmp_path, [latin])
    with pytest.raises(DataError, match="nope.txt: corpus file not found"):
        prepare(tmp_path, [tmp_path / "nope.txt"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="empty.txt: corpus file has no text lines"):
        prepare(tmp_path, [empty])


def test_one_line_corpus_fails_at_prepare_corpus(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("just one line of text here\n")
    with pytest.raises(DataError, match="too few documents to split off validation"):
        prepare(tmp_path, [one])


def test_tokenizer_refuses_a_tiny_vocabulary(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("ab ab ab ba ba\n" * 20)
    with pytest.raises(DataError, match=r"tiny\.txt: the trained vocabulary has only \d+ tokens"):
        train_small_tokenizer(tmp_path, text)


def test_a_50_mb_single_line_is_cut_into_bounded_lines(tmp_path):
    words = [f"w{i % 5000}" for i in range(9_000_000)]
    huge = tmp_path / "huge.txt"
    huge.write_text(" ".join(words) + " x" * 40 + "\n" + "tail line\n", encoding="utf-8")
    assert huge.stat().st_size > 50e6
    stats = prepare(tmp_path, [huge], split_unit="line", max_line_chars=100_000)
    total_words = 0
    for name in ("train.txt", "validation.txt"):
        with open(tmp_path / "corpus" / name, encoding="utf-8") as handle:
            for line in handle:
                assert len(line) <= 100_001
                total_words += len(line.split())
    assert total_words == stats["train_words"] + stats["validation_words"] == len(words) + 40 + 2


def test_over_long_line_without_spaces_is_cut_at_the_limit():
    import io

    assert list(corpus.bounded_lines(io.StringIO("a" * 2500 + "\nb c\n"), 1000)) == ["a" * 1000, "a" * 1000, "a" * 500, "b c"]
    assert list(corpus.bounded_lines(io.StringIO("aa bb cc dd\n"), 6)) == ["aa bb", "cc", "dd"]


def test_full_disk_during_tokenize_corpus_keeps_nothing_half_written(fixture_text, tmp_path, monkeypatch):
    tok_dir = train_small_tokenizer(tmp_path, fixture_text)
    calls = []

    def fill_up(self, ids):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, ids)

    original = BlockFileWriter.append
    monkeypatch.setattr(BlockFileWriter, "append", fill_up)
    out = tmp_path / "blocks"
    with pytest.raises(ResourceError, match=r"blocks: the disk filled up while writing the token blocks"):
        build_blocks(tokenizer_dir=str(tok_dir), train_file=str(fixture_text), validation_file=str(fixture_text),
                     seq_len=32, out_dir=str(out))
    assert not list(out.glob("*.partial")) and not (out / "blocks_meta.json").exists()
    with pytest.raises(DataError, match="blocks_meta.json"):
        load_blocks(str(out))


def test_too_little_free_disk_fails_before_tokenizing(fixture_text, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    tok_dir = train_small_tokenizer(tmp_path, fixture_text)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    with pytest.raises(ResourceError, match="the token blocks needs about"):
        build_blocks(tokenizer_dir=str(tok_dir), train_file=str(fixture_text), validation_file=str(fixture_text),
                     seq_len=32, out_dir=str(tmp_path / "blocks"))


def test_truncated_block_file_is_refused(fixture_text, tmp_path):
    tok_dir = train_small_tokenizer(tmp_path, fixture_text)
    out = tmp_path / "blocks"
    build_blocks(tokenizer_dir=str(tok_dir), train_file=str(fixture_text), validation_file=str(fixture_text),
                 seq_len=32, out_dir=str(out))
    data = (out / "train.bin").read_bytes()
    (out / "train.bin").write_bytes(data[:-10])
    with pytest.raises(DataError, match="train.bin: .* truncated or stale"):
        load_blocks(str(out))


def test_hub_rows_are_documents_read_from_the_saved_dataset(tmp_path):
    import datasets

    rows = [f"article {i} first paragraph\narticle {i} second paragraph" for i in range(40)] + ["", "  "]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": rows})}).save_to_disk(str(tmp_path / "hub"))
    out = tmp_path / "corpus"
    stats = corpus.prepare_corpus(source="hub", hub_dir=str(tmp_path / "hub"), hub_splits=("train", None),
                                  out_train=str(out / "train.txt"), out_validation=str(out / "validation.txt"),
                                  out_stats=str(out / "stats.json"), validation_fraction=0.2, seed=1)
    assert stats["train_documents"] + stats["validation_documents"] == 40
    assert stats["train_lines"] + stats["validation_lines"] == 80 and stats["validation_documents"] >= 3
    first = (out / "validation.txt").read_text().split("\n\n")[0].splitlines()
    assert [line.split()[1] for line in first] == [first[0].split()[1]] * 2  # both paragraphs of one article
    with pytest.raises(DataError, match="split 'validation' not found"):
        corpus.prepare_corpus(source="hub", hub_dir=str(tmp_path / "hub"), out_train=str(out / "train.txt"),
                              out_validation=str(out / "validation.txt"), out_stats=str(out / "stats.json"),
                              validation_fraction=0.2, seed=1)
