"""Extractive QA features and answer decoding, following transformers' run_qa.py / utils_qa.py.

Long contexts are split into windows of `max_length` tokens overlapping by `doc_stride`; the
offset mapping ties tokens back to characters so that predicted spans become answer text. With
SQuAD v2.0 the [CLS] token stands for "no answer": unanswerable questions are trained to point at it
and its score is the null answer's when decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


class PairTemplate:
    """Where the tokenizer's post-processor puts its special tokens around a (question, context)
    pair, read off a probe pair's encoding: BERT `[CLS] q [SEP] c [SEP]`, RoBERTa
    `<s> q </s></s> c </s>`, a tokenizer without a post-processor nothing. Each part is a list of
    (token id, type id); `question_type` / `context_type` are the segments' type ids."""

    def __init__(self, backend):
        probe = backend.encode("a", "b", add_special_tokens=True)
        parts: list[list[tuple[int, int]]] = [[], [], []]  # before the question, between, after the context
        part = 0
        self.question_type = self.context_type = 0
        for token, type_id, sequence in zip(probe.ids, probe.type_ids, probe.sequence_ids):
            if sequence is None:
                parts[part].append((token, type_id))
            elif sequence == 0:
                part, self.question_type = 1, type_id
            else:
                part, self.context_type = 2, type_id
        self.prefix, self.middle, self.suffix = parts

    @property
    def special_tokens(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


class Windows:
    """question / context-window pairs in the tokenizer's own template, padded to `max_length` on
    the tokenizer's padding side, with offsets into the context and sequence ids (None for special
    tokens and padding, 0 question, 1 context), like a BatchEncoding."""

    def __init__(self, tokenizer, template: PairTemplate, max_length: int, token_types: bool):
        self.tokenizer, self.template, self.max_length = tokenizer, template, max_length
        names = ["input_ids", "attention_mask", "offset_mapping"] + (["token_type_ids"] if token_types else [])
        self.columns: dict[str, list] = {name: [] for name in names}
        self._sequence_ids: list[list] = []
        self.sample_of_window: list[int] = []

    def __len__(self) -> int:
        return len(self.sample_of_window)

    def __getitem__(self, key: str) -> list:
        return self.columns[key]

    def sequence_ids(self, window: int) -> list:
        return self._sequence_ids[window]

    def add(self, sample: int, question: list[int], context_ids: list[int], context_offsets: list) -> None:
        t = self.template
        parts = [  # (token ids, type ids, sequence id, offsets) of each part, in order
            _special_part(t.prefix),
            (question, [t.question_type] * len(question), 0, [(0, 0)] * len(question)),
            _special_part(t.middle),
            (context_ids, [t.context_type] * len(context_ids), 1, list(context_offsets)),
            _special_part(t.suffix),
        ]
        real = sum(len(ids) for ids, *_ in parts)
        pad = self.max_length - real
        padding = ([self.tokenizer.pad_token_id] * pad, [0] * pad, None, [(0, 0)] * pad)
        left = self.tokenizer.padding_side == "left"
        parts = [padding, *parts] if left else [*parts, padding]
        row = {name: [value for part in parts for value in part[column]]
               for name, column in (("input_ids", 0), ("token_type_ids", 1), ("offset_mapping", 3))}
        row["attention_mask"] = [0] * pad + [1] * real if left else [1] * real + [0] * pad
        for name in self.columns:
            self.columns[name].append(row[name])
        self._sequence_ids.append([part[2] for part in parts for _ in part[0]])
        self.sample_of_window.append(sample)


def _special_part(tokens: list[tuple[int, int]]) -> tuple:
    return [i for i, _ in tokens], [k for _, k in tokens], None, [(0, 0)] * len(tokens)


def trimmed_offsets(text: str, offsets) -> list[tuple[int, int]]:
    """Token spans without the whitespace a byte-level BPE or Metaspace token carries with it
    (RoBERTa's `Ġparis` spans " paris"): an answer then starts and ends on its own characters."""
    trimmed = []
    for start, end in offsets:
        while start < end and text[start].isspace():
            start += 1
        trimmed.append((start, end))
    return trimmed


def _tokenize(tokenizer, examples: list[dict], max_length: int, doc_stride: int,
              token_types: bool = True) -> Windows:
    """Slide windows of the context's tokens, each overlapping the previous by `doc_stride`, in
    the tokenizer's pair template (`token_types`: keep token_type_ids, see bertflow.inputs).

    Built here rather than with `return_overflowing_tokens`: in transformers 5.17 / tokenizers
    0.23 that drops the end of long contexts of question/context pairs (seen with our WordPiece
    tokenizers), which silently removes answers from training and evaluation."""
    backend = tokenizer.backend_tokenizer
    template = PairTemplate(backend)
    windows = Windows(tokenizer, template, max_length, token_types)
    for sample, example in enumerate(examples):
        question = backend.encode(example["question"].lstrip(), add_special_tokens=False).ids
        question = question[: max_length // 2]  # a runaway question must leave room for context
        context = backend.encode(example["context"], add_special_tokens=False)
        offsets = trimmed_offsets(example["context"], context.offsets)
        room = max_length - len(question) - template.special_tokens
        if room <= doc_stride:
            raise ConfigError(f"finetune.squad: max_length {max_length} leaves {room} context tokens after "
                              f"question {example['id']!r}, not more than doc_stride {doc_stride}; "
                              "raise max_length or lower doc_stride")
        start = 0
        while True:
            end = min(start + room, len(context.ids))
            windows.add(sample, question, context.ids[start:end], offsets[start:end])
            if end == len(context.ids):
                break
            start = end - doc_stride
    return windows


def train_features(tokenizer, examples: list[dict], max_length: int, doc_stride: int,
                   token_types: bool = True) -> dict:
    """input_ids/attention_mask (and token_type_ids with `token_types`) plus start/end token
    positions (the [CLS] index when the answer lies outside the window or the question has none)."""
    enc = _tokenize(tokenizer, examples, max_length, doc_stride, token_types)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        cls_index = enc["input_ids"][i].index(tokenizer.cls_token_id)
        sequence_ids = enc.sequence_ids(i)
        answer = examples[enc.sample_of_window[i]]["answers"]
        if not answer["text"]:  # unanswerable (SQuAD v2.0): the window's CLS token, as run_qa.py does
            starts.append(cls_index)
            ends.append(cls_index)
            continue
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
    return {**{name: enc[name] for name in enc.columns if name != "offset_mapping"},
            "start_positions": starts, "end_positions": ends}


def eval_features(tokenizer, examples: list[dict], max_length: int, doc_stride: int,
                  token_types: bool = True) -> tuple[dict, list, np.ndarray]:
    """Model inputs, plus per window: the example index and the character span of every token,
    an int32 array [windows, max_length, 2] holding -1 where the token is not context."""
    enc = _tokenize(tokenizer, examples, max_length, doc_stride, token_types)
    example_index = list(enc.sample_of_window)
    offsets = np.full((len(enc), max_length, 2), -1, dtype=np.int32)
    for i in range(len(enc)):
        context = [t for t, seq_id in enumerate(enc.sequence_ids(i)) if seq_id == 1]
        offsets[i, context] = [enc["offset_mapping"][i][t] for t in context]
    inputs = {name: enc[name] for name in enc.columns if name != "offset_mapping"}
    return inputs, example_index, offsets


def best_spans(
    examples: list[dict],
    example_index: list[int],
    offsets: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int,
    max_answer_length: int,
) -> dict[str, tuple[str, float]]:
    """Best-scoring valid span (start <= end, at most max_answer_length tokens, inside the
    context) over all windows of each example, among the n_best start and end candidates: its
    text and start + end score ("" and -inf where no window has a valid span).

    Tokens outside the context (question, special tokens, padding) are excluded before the
    candidates are chosen, so the answer does not depend on how much padding a window carries
    (utils_qa.py filters them after choosing, which lets padding crowd out valid candidates)."""
    outside = offsets[:, : start_logits.shape[1], 0] < 0
    start_logits = np.where(outside, -np.inf, start_logits)
    end_logits = np.where(outside, -np.inf, end_logits)
    spans = {}
    for example, windows in zip(examples, windows_of_examples(example_index, len(examples))):
        best_text, best_score = "", -np.inf
        for window in windows:
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
        spans[example["id"]] = (best_text, float(best_score))
    return spans


def windows_of_examples(example_index: list[int], num_examples: int) -> list[list[int]]:
    """The evaluation windows of each example, in window order."""
    windows: list[list[int]] = [[] for _ in range(num_examples)]
    for window, ex in enumerate(example_index):
        windows[ex].append(window)
    return windows


def decode_answers(examples: list[dict], example_index: list[int], offsets: np.ndarray, start_logits: np.ndarray,
                   end_logits: np.ndarray, n_best: int, max_answer_length: int) -> dict[str, str]:
    """SQuAD v1.1: every example's best span (see best_spans)."""
    spans = best_spans(examples, example_index, offsets, start_logits, end_logits, n_best, max_answer_length)
    return {qid: text for qid, (text, _) in spans.items()}


def cls_positions(input_ids, cls_token_id: int) -> np.ndarray:
    """The [CLS] index of every evaluation window, read from its input ids (not assumed to be 0)."""
    input_ids = np.asarray(input_ids)
    is_cls = input_ids == cls_token_id
    if not is_cls.any(axis=1).all():
        raise ValueError(f"an evaluation window has no [CLS] token (id {cls_token_id}) to score the null answer")
    return is_cls.argmax(axis=1)


@dataclass
class NullDecoded:
    """SQuAD v2.0 decoding: `answers` the predictions ("" for no answer); `spans` the best non-null
    answer of each example; `null_score_diffs` its null score minus that span's score (+inf where
    no window has a valid span), the score from which the best threshold is found."""

    answers: dict[str, str]
    spans: dict[str, str]
    null_score_diffs: dict[str, float]

    def rows(self) -> dict[str, dict]:
        """Per question, what predictions.json keeps (JSON has no infinity: null there)."""
        diffs = {qid: diff if np.isfinite(diff) else None for qid, diff in self.null_score_diffs.items()}
        return {qid: {"prediction_text": answer, "best_span": self.spans[qid], "null_score_diff": diffs[qid]}
                for qid, answer in self.answers.items()}


def decode_answers_v2(examples: list[dict], example_index: list[int], offsets: np.ndarray, start_logits: np.ndarray,
                      end_logits: np.ndarray, n_best: int, max_answer_length: int, cls_index: np.ndarray,
                      null_score_diff_threshold: float) -> NullDecoded:
    """As utils_qa.py's postprocess_qa_predictions with version_2_with_negative: the null score of an
    example is the lowest [CLS] start + end score over its windows; "" is predicted where the null
    score exceeds the best span's score by more than `null_score_diff_threshold`."""
    spans = best_spans(examples, example_index, offsets, start_logits, end_logits, n_best, max_answer_length)
    rows = np.arange(len(cls_index))
    window_null = start_logits[rows, cls_index] + end_logits[rows, cls_index]
    decoded = NullDecoded({}, {}, {})
    for example, windows in zip(examples, windows_of_examples(example_index, len(examples))):
        qid = example["id"]
        text, score = spans[qid]
        diff = float(window_null[windows].min() - score) if windows else float("inf")
        decoded.spans[qid], decoded.null_score_diffs[qid] = text, diff
        decoded.answers[qid] = "" if diff > null_score_diff_threshold else text
    return decoded
