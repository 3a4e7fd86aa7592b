"""SQuAD exact match and F1, as defined by the official evaluation scripts (evaluate-v1.1.py and
evaluate-v2.0.py).

The per-answer definitions live here; the run scores through the `evaluate` modules
bertflow/metrics/squad_v1.py and squad_v2.py built on them (loaded from the repository, not fetched
from the Hub).
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


def metric_info(description: str, inputs_description: str, **prediction_features):
    """The `evaluate` MetricInfo of both SQuAD modules: predictions hold an id, the answer text and
    `prediction_features`; references an id and the gold answers in the Hub datasets' layout (an
    unanswerable v2.0 question has empty lists)."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description, citation="", inputs_description=inputs_description,
        features=datasets.Features({
            "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string"),
                            **prediction_features},
            "references": {"id": datasets.Value("string"), "answers": datasets.Sequence(
                {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")})},
        }),
    )


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


# ----------------------------------------------------------------------------- SQuAD v2.0


def f1_v2(prediction: str, truth: str) -> float:
    """evaluate-v2.0.py's F1: as v1.1's, except that an answer normalising to nothing scores 1
    against another such answer and 0 against any other (v1.1 gives F1 0 to both)."""
    pred_tokens, truth_tokens = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred_tokens or not truth_tokens:
        return float(pred_tokens == truth_tokens)
    return f1(prediction, truth)


def gold_answers_v2(answers: list[str]) -> list[str]:
    """The gold answers evaluate-v2.0.py scores against: those that normalise to some text, or the
    empty answer for an unanswerable question."""
    return [answer for answer in answers if normalize_answer(answer)] or [""]


def best_threshold(raw: dict[str, float], answered: dict[str, bool], null_score_diffs: dict[str, float],
                   has_answer: dict[str, bool]) -> tuple[float, float]:
    """evaluate-v2.0.py's find_best_thresh: start from "no answer" everywhere, answer the questions
    in increasing null-score-diff order, and keep the threshold (null predicted when diff > it)
    with the best total score; returns (score in percent, threshold). As in the official script the
    threshold starts at 0.0, which is reported when no answer anywhere scores best."""
    score = best = float(sum(not has for has in has_answer.values()))
    threshold = 0.0
    for qid in sorted(null_score_diffs, key=null_score_diffs.get):
        if has_answer[qid]:
            score += raw[qid]
        elif answered[qid]:
            score -= 1  # a span for an unanswerable question
        if score > best:
            best, threshold = score, null_score_diffs[qid]
    return 100.0 * best / len(raw), threshold


def squad_v2_scores(answers_by_id: dict[str, list[str]], spans: dict[str, str],
                    null_score_diffs: dict[str, float], null_score_diff_threshold: float) -> dict:
    """The official v2.0 scores (percent): `spans` the best non-null answer of every question,
    `null_score_diffs` its null score minus that span's score; the null answer is predicted where
    the diff exceeds `null_score_diff_threshold`."""
    from .metrics import load

    missing = [qid for qid in answers_by_id if qid not in spans]
    if missing:  # the official script cannot score them either (its HasAns/NoAns totals need every id)
        raise ValueError(f"SQuAD v2.0 scoring: no prediction for {len(missing)} question(s), e.g. {missing[:3]}")
    return load("squad_v2").compute(
        predictions=[{"id": qid, "prediction_text": spans[qid], "null_score_diff": null_score_diffs[qid]}
                     for qid in answers_by_id],
        references=[{"id": qid, "answers": {"text": list(answers), "answer_start": [0] * len(answers)}}
                    for qid, answers in answers_by_id.items()],
        null_score_diff_threshold=null_score_diff_threshold,
    )
