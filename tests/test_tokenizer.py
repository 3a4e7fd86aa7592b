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
