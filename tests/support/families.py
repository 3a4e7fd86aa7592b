"""Tiny random-weight encoders of every family a baseline can be (benchmarks/families.py builds
them), each with a tokenizer of its own kind trained on a few KB of generated text. Nothing is
downloaded. Two layers, hidden 32; the model is saved with its pretraining head.

`family_model(name, root)` builds one folder (once per `root` and name in a test run).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from benchmarks.families import FAMILIES, Shape, save_family_model
from benchmarks.families import family_tokenizer as trained_tokenizer

__all__ = ["FAMILIES", "MAX_LENGTH", "family_model", "family_tokenizer"]

# Positions for max_length up to 128 (RoBERTa and XLM-R count from pad id + 1).
MAX_LENGTH = 128
TINY = Shape(hidden=32, layers=2, heads=2, feed_forward=64, max_positions=MAX_LENGTH, embedding=16,
             position_buckets=16, local_attention=16, vocab_size=400)


@lru_cache(maxsize=1)
def corpus_lines() -> tuple[str, ...]:
    """A few KB of the generated world's text (the words of the generated SST-2 and SQuAD), with
    capitals and punctuation so that cased and byte-level tokenizers see them."""
    from bertflow.synthetic import generate_corpus
    from bertflow.synthetic_tasks import generate_squad, generate_sst2

    lines = generate_corpus(300, seed=1)
    lines += [sentence for sentence, _ in generate_sst2(60, seed=2)]
    for article in generate_squad(4, seed=3)["data"]:
        for paragraph in article["paragraphs"]:
            lines.append(paragraph["context"])
            lines += [qa["question"] for qa in paragraph["qas"]]
    return tuple(lines + [line.capitalize() + " !" for line in lines[:100]])


def family_tokenizer(family: str):
    return trained_tokenizer(family, list(corpus_lines()), TINY.vocab_size)


@lru_cache(maxsize=None)
def family_model(family: str, root: str, seed: int = 0) -> str:
    """`root`/`family`: a saved tiny model and its tokenizer (built once per test run)."""
    return save_family_model(family, Path(root, family), list(corpus_lines()), TINY, seed)
