"""Model inputs built the model's own way: its tokenizer's single/pair template (BERT
`[CLS] a [SEP] b [SEP]`, RoBERTa `<s> a </s></s> b </s>`, ...), its padding side and pad id, and
token type ids only for models that have token type embeddings to read them."""

from __future__ import annotations

import torch


def uses_token_types(config) -> bool:
    """True when the model has token type embeddings that tell two segments apart
    (`type_vocab_size` > 1): BERT, ELECTRA, ALBERT, SqueezeBERT. RoBERTa and XLM-R have one row
    (an id 1 would index past it), DistilBERT, DeBERTa-v3 and ModernBERT none."""
    return (getattr(config, "type_vocab_size", None) or 0) > 1


def encode_texts(tokenizer, first: list[str], second: list[str] | None, max_length: int, *,
                 token_types: bool) -> dict[str, torch.Tensor]:
    """Single texts or pairs through the tokenizer's own template, cut to `max_length` (the longer
    of a pair first) and padded to the longest row; `token_type_ids` only when `token_types`."""
    enc = tokenizer(first, second, truncation="longest_first", max_length=max_length, padding="longest",
                    return_token_type_ids=token_types, return_tensors="pt")
    keys = ("input_ids", "attention_mask", "token_type_ids") if token_types else ("input_ids", "attention_mask")
    return {key: enc[key] for key in keys}
