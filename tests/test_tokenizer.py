"""The tokenizer stage: the same text gives the same tokenizer.json, byte for byte, in any process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

from bertflow import synthetic

TRAIN_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import sys
    from bertflow.tokenizer import train_tokenizer
    corpus, out = sys.argv[1], sys.argv[2]
    train_tokenizer(train_file=corpus, validation_file=corpus, out_dir=out, out_report=out + ".json",
                    vocab_size=300, lowercase=True, min_frequency=2,
                    special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], model_max_length=64)
""")


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_processes_train_a_byte_identical_tokenizer(tmp_path):
    # The generated corpus repeats a few templates: many merges tie on their count, which
    # `tokenizers` alone breaks by ids that differ between processes (3 of 3 runs differed).
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(synthetic.generate_corpus(600, seed=3)) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", TRAIN_IN_A_FRESH_PROCESS, str(corpus), str(tmp_path / run)],
                       check=True, env=env)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name), name


def test_a_vocabulary_the_corpus_cannot_fill_is_warned_about_and_reported(tmp_path, caplog):
    import json
    import logging

    from bertflow.card import training_section
    from bertflow.summary import tokenizer_section
    from bertflow.tokenizer import train_tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(synthetic.generate_corpus(300, seed=3)) + "\n")
    with caplog.at_level(logging.WARNING, logger="bertflow"):
        train_tokenizer(train_file=str(corpus), validation_file=str(corpus), out_dir=str(tmp_path / "tok"),
                        out_report=str(tmp_path / "report.json"), vocab_size=30_000, lowercase=True,
                        min_frequency=2, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                        model_max_length=64)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["vocab_size"] < 30_000
    note = (f"the corpus filled only {report['vocab_size']:,} of the 30,000 vocabulary pieces asked for "
            "(tokenizer.vocab_size)")
    assert any(note in record.getMessage() and str(corpus) in record.getMessage() for record in caplog.records)
    assert any(note in line for line in tokenizer_section(report))
    info = {"tokens_seen": 1, "epochs": 1, "steps": 1, "wall_time_s": 1.0}
    assert any(note in str(row) for row in training_section(info, {"source": "generated"}, report))
    full = {**report, "requested_vocab_size": report["vocab_size"]}
    assert not any("filled only" in line for line in tokenizer_section(full))
