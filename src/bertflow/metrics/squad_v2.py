"""SQuAD v2.0 scores (percent) as an `evaluate` module, computed as the official evaluate-v2.0.py
does with a no-answer file: per question the best over the gold answers (an unanswerable question's
gold is the empty answer), the null answer where its score diff exceeds the threshold, the HasAns /
NoAns breakdown, and the thresholds that would have scored best."""

import datasets
import evaluate

from bertflow.squad_metrics import best_threshold, exact_match, f1_v2, gold_answers_v2, metric_info

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: [{"id": str, "prediction_text": str, "null_score_diff": float}], one per question,
        in any order: the best non-null answer and its null score minus its span score (what
        evaluate-v2.0.py reads from its --na-prob-file).
    references: [{"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}]; an
        unanswerable question has empty lists.
    null_score_diff_threshold: the null answer is predicted where null_score_diff exceeds it.
Returns:
    exact_match, f1, total; HasAns_exact, HasAns_f1, HasAns_total and NoAns_exact, NoAns_f1,
    NoAns_total (each where such questions exist); best_exact, best_exact_thresh, best_f1,
    best_f1_thresh.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadV2(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, null_score_diff=datasets.Value("float64"))

    def _compute(self, predictions, references, null_score_diff_threshold=0.0):
        spans = {p["id"]: p["prediction_text"] for p in predictions}
        diffs = {p["id"]: p["null_score_diff"] for p in predictions}
        has_answer = {r["id"]: bool(r["answers"]["text"]) for r in references}
        if set(spans) != set(has_answer):
            raise ValueError("squad_v2: predictions and references must hold the same question ids")
        raw_exact, raw_f1 = {}, {}
        for reference in references:
            qid, gold = reference["id"], gold_answers_v2(reference["answers"]["text"])
            raw_exact[qid] = max(exact_match(spans[qid], answer) for answer in gold)
            raw_f1[qid] = max(f1_v2(spans[qid], answer) for answer in gold)
        null = {qid: diffs[qid] > null_score_diff_threshold for qid in spans}
        exact = {qid: float(not has_answer[qid]) if null[qid] else raw_exact[qid] for qid in spans}
        f1 = {qid: float(not has_answer[qid]) if null[qid] else raw_f1[qid] for qid in spans}
        scores = _totals(exact, f1, list(spans), "")
        scores = {"exact_match": scores["exact"], "f1": scores["f1"], "total": scores["total"]}
        for prefix, wanted in (("HasAns_", True), ("NoAns_", False)):
            ids = [qid for qid in spans if has_answer[qid] == wanted]
            if ids:
                scores.update(_totals(exact, f1, ids, prefix))
        answered = {qid: bool(spans[qid]) for qid in spans}
        scores["best_exact"], scores["best_exact_thresh"] = best_threshold(raw_exact, answered, diffs, has_answer)
        scores["best_f1"], scores["best_f1_thresh"] = best_threshold(raw_f1, answered, diffs, has_answer)
        return scores


def _totals(exact: dict, f1: dict, ids: list, prefix: str) -> dict:
    """evaluate-v2.0.py's make_eval_dict over the questions `ids`."""
    return {f"{prefix}exact": 100.0 * sum(exact[qid] for qid in ids) / len(ids),
            f"{prefix}f1": 100.0 * sum(f1[qid] for qid in ids) / len(ids),
            f"{prefix}total": len(ids)}
