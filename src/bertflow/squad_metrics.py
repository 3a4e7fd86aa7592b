"""SQuAD v1.1 exact match and F1, as defined by the official evaluation script (evaluate-v1.1.py).

The per-answer definitions live here; the run scores through the `evaluate` module
bertflow/metrics/squad_v1.py built on them (loaded from the repository, not fetched from the Hub).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    """Token-overlap F1 between the normalised answers."""
    pred_tokens, truth_tokens = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = Counter(pred_tokens) & Counter(truth_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_answers(metric, prediction: str, answers: list[str]) -> float:
    return max(metric(prediction, answer) for answer in answers)


def squad_scores(answers_by_id: dict[str, list[str]], predictions: dict[str, str]) -> dict:
    """EM and F1 in percent over every gold question; a question without a prediction scores 0
    (as the official script does, whatever its gold answer normalises to)."""
    from .metrics import load

    return load("squad_v1").compute(
        predictions=[
            {"id": qid, "prediction_text": predictions.get(qid, ""), "answered": qid in predictions}
            for qid in answers_by_id
        ],
        references=[
            {"id": qid, "answers": {"text": list(answers), "answer_start": [0] * len(answers)}}
            for qid, answers in answers_by_id.items()
        ],
    )
