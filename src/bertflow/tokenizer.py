"""Tokenizer stage: a WordPiece vocabulary trained with `tokenizers`, saved as a BERT tokenizer."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ConfigError, DataError
from .io import save_tokenizer, write_json
from .provenance import environment_info

log = logging.getLogger(__name__)

BERT_ROLES = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}


def build_wordpiece(lowercase: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(unk_token=BERT_ROLES["unk_token"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


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
):
    from tokenizers import processors, trainers
    from transformers import BertTokenizerFast

    missing = set(BERT_ROLES.values()) - set(special_tokens)
    if missing:
        raise ConfigError(f"tokenizer.special_tokens: missing BERT tokens {sorted(missing)}")
    if Path(train_file).stat().st_size == 0:
        raise DataError(f"{train_file}: training text is empty")

    tok = build_wordpiece(lowercase)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special_tokens
    )
    tok.train([train_file], trainer)
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
    report.update(requested_vocab_size=vocab_size, lowercase=lowercase, min_frequency=min_frequency)
    report["environment"] = environment_info()
    write_json(out_report, report)
    Path(out_report).with_suffix(".md").write_text(report_markdown(report), encoding="utf-8")
    log.info("tokenizer: %d tokens, UNK rate %.4f", report["vocab_size"], report["unk_rate"])
    return fast


def tokenizer_report(tokenizer, text_file: str) -> dict:
    """Vocabulary size, UNK rate and mean sub-words per word on held-out text."""
    lines = [line for line in Path(text_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    norm = tokenizer.backend_tokenizer.normalizer
    words = subwords = unk_words = 0
    unk = tokenizer.unk_token
    for line in lines:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(line)):
            pieces = tokenizer.tokenize(word)
            words += 1
            subwords += len(pieces)
            unk_words += unk in pieces
    return {
        "vocab_size": len(tokenizer),
        "validation_words": words,
        "unk_rate": unk_words / words if words else 0.0,
        "subwords_per_word": subwords / words if words else 0.0,
    }


def report_markdown(report: dict) -> str:
    return (
        "# Tokenizer report\n\n"
        "| metric | value |\n|---|---|\n"
        f"| vocabulary size | {report['vocab_size']:,} |\n"
        f"| validation words | {report['validation_words']:,} |\n"
        f"| UNK rate (share of words with [UNK]) | {report['unk_rate']:.4%} |\n"
        f"| mean sub-words per word | {report['subwords_per_word']:.3f} |\n"
    )


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    if not Path(path, "tokenizer_config.json").is_file():
        raise DataError(f"{path}: no tokenizer_config.json; is this a tokenizer folder?")
    return AutoTokenizer.from_pretrained(path)
