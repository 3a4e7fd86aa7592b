"""The one place that decides how texts become model inputs: the tokenizer's own single or pair
template, and token type ids only for models that have token type embeddings."""

from __future__ import annotations

import torch


def uses_token_types(config) -> bool:
    """Whether the model reads token_type_ids: only with a token type embedding of 2 or more rows."""
    return (getattr(config, "type_vocab_size", 0) or 0) > 1


def encode_texts(tokenizer, first: list[str], second: list[str] | None, max_length: int, *,
                 token_types: bool) -> dict[str, torch.Tensor]:
    """Single texts or pairs through the tokenizer's template ([CLS] a [SEP] b [SEP] for BERT),
    truncated longest_first to `max_length` and padded to the longest row."""
    encoded = tokenizer(first, second, truncation="longest_first", max_length=max_length, padding="longest",
                        return_tensors="pt")
    keys = ("input_ids", "attention_mask", *(("token_type_ids",) if token_types else ()))
    return {key: encoded[key] for key in keys if key in encoded}
