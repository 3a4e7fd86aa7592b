"""SQuAD v1.1 exact match and F1 (percent) as an `evaluate` module, scored as the official
evaluate-v1.1.py does: best over the gold answers, and a question without a prediction
(answered False) scores 0 while still counting in the total."""

import datasets
import evaluate

from bertflow.squad_metrics import best_over_answers, exact_match, f1, metric_info

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: [{"id": str, "prediction_text": str, "answered": bool}], one per question, in any
        order; answered False marks a question the model gave no answer to (its text is ignored).
    references: [{"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}].
Returns:
    exact_match, f1 (percent over every reference question), questions, predicted.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadV1(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, answered=datasets.Value("bool"))

    def _compute(self, predictions, references):
        predicted = {p["id"]: p["prediction_text"] for p in predictions if p["answered"]}
        em = f1_total = 0.0
        for reference in references:
            prediction = predicted.get(reference["id"])
            if prediction is None:  # unanswered: 0, as the official script scores it
                continue
            em += best_over_answers(exact_match, prediction, reference["answers"]["text"])
            f1_total += best_over_answers(f1, prediction, reference["answers"]["text"])
        n = len(references)
        return {
            "exact_match": 100.0 * em / n if n else 0.0,
            "f1": 100.0 * f1_total / n if n else 0.0,
            "questions": n,
            "predicted": sum(reference["id"] in predicted for reference in references),
        }
