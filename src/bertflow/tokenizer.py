"""Tokenizer stage: a WordPiece vocabulary trained with `tokenizers`, saved as a BERT tokenizer."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError, DataError
from .io import read_json, read_text, save_tokenizer, write_json
from .provenance import environment_info

log = logging.getLogger(__name__)

CONTINUING_PREFIX = "##"
BERT_ROLES = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}


def build_wordpiece(lowercase: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(unk_token=BERT_ROLES["unk_token"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=CONTINUING_PREFIX)
    return tok


# A vocabulary smaller than this is not a tokenizer for a language model: the text was too small.
MIN_VOCAB_TOKENS = 100
# The report's UNK rate and sub-words per word settle long before this many validation lines.
REPORT_MAX_LINES = 200_000


def sampled_lines(text_file: str, max_bytes: int | None, seed: int, batch_lines: int = 1000) -> Iterator[list[str]]:
    """Non-blank lines of `text_file` in batches; above `max_bytes`, a seeded random share of lines
    of about that many bytes (the vocabulary of a huge corpus settles on a sample of it, and the
    trainer's memory grows with the number of distinct words it sees)."""
    size = Path(text_file).stat().st_size
    keep = 1.0 if not max_bytes or size <= max_bytes else max_bytes / size
    rng = random.Random(seed)
    batch: list[str] = []
    with open(text_file, encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and (keep == 1.0 or rng.random() < keep):
                batch.append(line)
                if len(batch) == batch_lines:
                    yield batch
                    batch = []
    if batch:
        yield batch


def continuing_pieces(batches, lowercase: bool) -> list[str]:
    """The single-character continuation pieces ("##e") the trainer creates for this text, sorted.

    A training run with no merges (vocabulary size 0) only counts words and builds the alphabet,
    so it costs one pass over the text and none of the merge work.
    """
    from tokenizers import trainers

    tok = build_wordpiece(lowercase)
    tok.train_from_iterator(batches, trainers.WordPieceTrainer(vocab_size=0, show_progress=False))
    return sorted(piece for piece in tok.get_vocab() if piece.startswith(CONTINUING_PREFIX)
                  and len(piece) == len(CONTINUING_PREFIX) + 1)


def train_deterministic(batches_factory, *, lowercase: bool, vocab_size: int, min_frequency: int,
                        special_tokens: list[str]):
    """A WordPiece tokenizer whose ids, and so whose merges, do not depend on the process.

    `tokenizers` (up to 0.23.3 at least) gives the "##e" pieces ids in the order a hash map of the
    words is walked, which changes from process to process, and ties between equally frequent
    merges are broken by those ids: the same text gave other ids and, at the vocabulary's edge,
    other pieces. Handing the trainer those pieces, sorted, as extra special tokens fixes their
    ids before it walks the words; everything after that is deterministic. They are then dropped
    from the added tokens again, so they stay ordinary vocabulary pieces.
    """
    from tokenizers import Tokenizer, trainers

    pinned = continuing_pieces(batches_factory(), lowercase)
    tok = build_wordpiece(lowercase)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=[*special_tokens, *pinned], show_progress=False)
    tok.train_from_iterator(batches_factory(), trainer)
    state = json.loads(tok.to_str())
    state["added_tokens"] = [token for token in state["added_tokens"] if token["content"] in special_tokens]
    return Tokenizer.from_str(json.dumps(state))


def train_tokenizer(
    *,
    train_file: str,
    validation_file: str,
    out_dir: str,
    out_report: str,
    vocab_size: int,
    lowercase: bool,
    min_frequency: int,
    special_tokens: list[str],
    model_max_length: int,
    max_train_bytes: int | None = None,
    seed: int = 0,
):
    from tokenizers import processors
    from transformers import BertTokenizerFast

    missing = set(BERT_ROLES.values()) - set(special_tokens)
    if missing:
        raise ConfigError(f"tokenizer.special_tokens: missing BERT tokens {sorted(missing)}")
    if Path(train_file).stat().st_size == 0:
        raise DataError(f"{train_file}: training text is empty")

    tok = train_deterministic(lambda: sampled_lines(train_file, max_train_bytes, seed), lowercase=lowercase,
                              vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special_tokens)
    if tok.get_vocab_size() < min(MIN_VOCAB_TOKENS, vocab_size):
        raise DataError(
            f"{train_file}: the trained vocabulary has only {tok.get_vocab_size()} tokens (asked for {vocab_size}); "
            "the training text is far too small or too uniform for a tokenizer: add text"
        )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok, do_lower_case=lowercase, model_max_length=model_max_length, **BERT_ROLES
    )
    save_tokenizer(fast, out_dir)
    report = tokenizer_report(fast, validation_file)
    report.update(requested_vocab_size=vocab_size, lowercase=lowercase, min_frequency=min_frequency,
                  max_train_bytes=max_train_bytes)
    report["environment"] = environment_info()
    if vocabulary_shortfall(report):
        log.warning("%s: %s", train_file, vocabulary_shortfall(report))
    write_json(out_report, report)
    Path(out_report).with_suffix(".md").write_text(report_markdown(report), encoding="utf-8")
    log.info("tokenizer: %d tokens, UNK rate %.4f", report["vocab_size"], report["unk_rate"])
    return fast


def tokenizer_report(tokenizer, text_file: str, max_lines: int = REPORT_MAX_LINES) -> dict:
    """Vocabulary size, UNK rate and mean sub-words per word on held-out text (its first
    `max_lines` lines, read as a stream and encoded in batches)."""
    unk_id = tokenizer.unk_token_id
    words = subwords = unk_words = lines = 0
    for batch in sampled_lines(text_file, None, 0):
        batch = batch[: max_lines - lines]
        lines += len(batch)
        for encoding in tokenizer.backend_tokenizer.encode_batch(batch, add_special_tokens=False):
            unknown = {word for word, token in zip(encoding.word_ids, encoding.ids) if token == unk_id}
            words += len(set(encoding.word_ids))
            subwords += len(encoding.ids)
            unk_words += len(unknown)
        if lines >= max_lines:
            break
    return {
        "vocab_size": len(tokenizer),
        "validation_lines_read": lines,
        "validation_words": words,
        "unk_rate": unk_words / words if words else 0.0,
        "subwords_per_word": subwords / words if words else 0.0,
    }


def vocabulary_shortfall(report: dict) -> str | None:
    """A sentence when the text gave fewer pieces than tokenizer.vocab_size asked for (the trainer
    stops when no pair is frequent enough), else None: for the log, report.md and the model card."""
    asked, got = report.get("requested_vocab_size"), report.get("vocab_size")
    if not asked or got is None or got >= asked:
        return None
    return (f"the corpus filled only {got:,} of the {asked:,} vocabulary pieces asked for (tokenizer.vocab_size): "
            "it has too few distinct words; add text, or lower tokenizer.vocab_size to silence this")


def report_markdown(report: dict) -> str:
    return (
        "# Tokenizer report\n\n"
        "| metric | value |\n|---|---|\n"
        f"| vocabulary size | {report['vocab_size']:,} |\n"
        f"| validation words | {report['validation_words']:,} |\n"
        f"| UNK rate (share of words with [UNK]) | {report['unk_rate']:.4%} |\n"
        f"| mean sub-words per word | {report['subwords_per_word']:.3f} |\n"
    )


# The tokenizer files a folder may hold that the libraries parse with errors naming no file.
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TOKENIZER_FIX = ("the file is truncated or damaged: delete the folder and rerun the stage that wrote it "
                 "(results/tokenizer: train_tokenizer), or copy or download the model again")


def tokenizer_file_problems(folder: str) -> list[str]:
    """What keeps the tokenizer files of `folder` from being read: JSON that is cut off or not
    UTF-8, a vocab.txt that is not UTF-8 (each named, with the line)."""
    problems = []
    for name in TOKENIZER_JSON_FILES:
        if Path(folder, name).is_file():
            try:
                read_json(Path(folder, name), "tokenizer file", fix=TOKENIZER_FIX)
            except DataError as err:
                problems.append(str(err))
    if Path(folder, "vocab.txt").is_file():
        try:
            read_text(Path(folder, "vocab.txt"), "tokenizer vocabulary")
        except DataError as err:
            problems.append(str(err))
    return problems


def require_readable_tokenizer(folder: str) -> None:
    problems = tokenizer_file_problems(folder)
    if problems:
        raise DataError("; ".join(problems))


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    if not Path(path, "tokenizer_config.json").is_file():
        raise DataError(f"{path}: no tokenizer_config.json; is this a tokenizer folder?")
    require_readable_tokenizer(path)
    return AutoTokenizer.from_pretrained(path)
