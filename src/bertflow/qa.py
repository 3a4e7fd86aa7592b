"""Extractive QA features and answer decoding, following transformers' run_qa.py / utils_qa.py.

Long contexts are split into windows of `max_length` tokens overlapping by `doc_stride`; the
offset mapping ties tokens back to characters so that predicted spans become answer text.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


class Windows:
    """[CLS] question [SEP] context-window [SEP] [PAD]... per window, with offsets into the context
    and sequence ids (None for special tokens, 0 question, 1 context), like a BatchEncoding."""

    def __init__(self):
        self.columns = {"input_ids": [], "attention_mask": [], "token_type_ids": [], "offset_mapping": []}
        self._sequence_ids: list[list] = []
        self.sample_of_window: list[int] = []

    def __len__(self) -> int:
        return len(self.sample_of_window)

    def __getitem__(self, key: str) -> list:
        return self.columns[key]

    def sequence_ids(self, window: int) -> list:
        return self._sequence_ids[window]

    def add(self, sample: int, tokenizer, question: list[int], context, start: int, end: int, max_length: int):
        ctx_ids, ctx_offsets = context.ids[start:end], context.offsets[start:end]
        ids = [tokenizer.cls_token_id, *question, tokenizer.sep_token_id, *ctx_ids, tokenizer.sep_token_id]
        pad = max_length - len(ids)
        self.columns["input_ids"].append(ids + [tokenizer.pad_token_id] * pad)
        self.columns["attention_mask"].append([1] * len(ids) + [0] * pad)
        self.columns["token_type_ids"].append([0] * (len(question) + 2) + [1] * (len(ctx_ids) + 1) + [0] * pad)
        self.columns["offset_mapping"].append(
            [(0, 0)] * (len(question) + 2) + list(ctx_offsets) + [(0, 0)] * (pad + 1))
        self._sequence_ids.append(
            [None] + [0] * len(question) + [None] + [1] * len(ctx_ids) + [None] * (pad + 1))
        self.sample_of_window.append(sample)


def _tokenize(tokenizer, examples: list[dict], max_length: int, doc_stride: int) -> Windows:
    """Slide windows of the context's tokens, each overlapping the previous by `doc_stride`.

    Built here rather than with `return_overflowing_tokens`: in transformers 5.17 / tokenizers
    0.23 that drops the end of long contexts of question/context pairs (seen with our WordPiece
    tokenizers), which silently removes answers from training and evaluation."""
    backend = tokenizer.backend_tokenizer
    windows = Windows()
    for sample, example in enumerate(examples):
        question = backend.encode(example["question"].lstrip(), add_special_tokens=False).ids
        question = question[: max_length // 2]  # a runaway question must leave room for context
        context = backend.encode(example["context"], add_special_tokens=False)
        room = max_length - len(question) - 3
        if room <= doc_stride:
            raise ConfigError(f"finetune.squad: max_length {max_length} leaves {room} context tokens after "
                              f"question {example['id']!r}, not more than doc_stride {doc_stride}; "
                              "raise max_length or lower doc_stride")
        start = 0
        while True:
            end = min(start + room, len(context.ids))
            windows.add(sample, tokenizer, question, context, start, end, max_length)
            if end == len(context.ids):
                break
            start = end - doc_stride
    return windows


def train_features(tokenizer, examples: list[dict], max_length: int, doc_stride: int) -> dict:
    """input_ids/attention_mask/token_type_ids plus start/end token positions (the [CLS] index
    when the answer lies outside the window)."""
    enc = _tokenize(tokenizer, examples, max_length, doc_stride)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        cls_index = enc["input_ids"][i].index(tokenizer.cls_token_id)
        sequence_ids = enc.sequence_ids(i)
        answer = examples[enc.sample_of_window[i]]["answers"]
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        first = sequence_ids.index(1)
        last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        token = first
        while token <= last and offsets[token][0] <= start_char:
            token += 1
        starts.append(token - 1)
        token = last
        while token >= first and offsets[token][1] >= end_char:
            token -= 1
        ends.append(token + 1)
    return {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc["token_type_ids"],
        "start_positions": starts,
        "end_positions": ends,
    }


def eval_features(tokenizer, examples: list[dict], max_length: int, doc_stride: int) -> tuple[dict, list, np.ndarray]:
    """Model inputs, plus per window: the example index and the character span of every token,
    an int32 array [windows, max_length, 2] holding -1 where the token is not context."""
    enc = _tokenize(tokenizer, examples, max_length, doc_stride)
    example_index = list(enc.sample_of_window)
    offsets = np.full((len(enc), max_length, 2), -1, dtype=np.int32)
    for i in range(len(enc)):
        context = [t for t, seq_id in enumerate(enc.sequence_ids(i)) if seq_id == 1]
        offsets[i, context] = [enc["offset_mapping"][i][t] for t in context]
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    return inputs, example_index, offsets


def decode_answers(
    examples: list[dict],
    example_index: list[int],
    offsets: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int,
    max_answer_length: int,
) -> dict[str, str]:
    """Best-scoring valid span (start <= end, at most max_answer_length tokens, inside the
    context) over all windows of each example, among the n_best start and end candidates.

    Tokens outside the context (question, special tokens, padding) are excluded before the
    candidates are chosen, so the answer does not depend on how much padding a window carries
    (utils_qa.py filters them after choosing, which lets padding crowd out valid candidates)."""
    outside = offsets[:, : start_logits.shape[1], 0] < 0
    start_logits = np.where(outside, -np.inf, start_logits)
    end_logits = np.where(outside, -np.inf, end_logits)
    windows: dict[int, list[int]] = {}
    for window, ex in enumerate(example_index):
        windows.setdefault(ex, []).append(window)
    predictions = {}
    for ex, example in enumerate(examples):
        best_text, best_score = "", -np.inf
        for window in windows.get(ex, []):
            window_offsets = offsets[window]
            start_candidates = np.argsort(start_logits[window])[-1 : -n_best - 1 : -1]
            end_candidates = np.argsort(end_logits[window])[-1 : -n_best - 1 : -1]
            for start in start_candidates:
                for end in end_candidates:
                    score = start_logits[window][start] + end_logits[window][end]
                    if end < start or end - start + 1 > max_answer_length or not score > best_score:
                        continue  # -inf scores (outside the context) never pass `score > best_score`
                    best_score = score
                    best_text = example["context"][window_offsets[start][0] : window_offsets[end][1]]
        predictions[example["id"]] = best_text
    return predictions
