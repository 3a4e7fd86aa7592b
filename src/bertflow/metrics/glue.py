"""GLUE's official metrics as an `evaluate` module, one configuration per task (as the Hub's `glue`
metric), in percent as the GLUE leaderboard shows them (correlations x 100), computed with
scikit-learn and scipy:

- cola: Matthews correlation; stsb: Pearson and Spearman correlation;
- mrpc, qqp: F1 of the positive class and accuracy; mnli, qnli, rte, wnli, sst2: accuracy;
- classification (a task of your own): accuracy and macro-averaged F1; regression: Pearson, Spearman.
"""

import datasets
import evaluate
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (a float score for stsb and regression).
    references: gold class ids (gold scores).
Returns:
    the task's metrics in percent (see the module description) and examples.
"""
REGRESSION_CONFIGS = ("stsb", "regression")
CONFIGS = ("cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli", "classification", *REGRESSION_CONFIGS)


def _accuracy(references, predictions) -> dict:
    return {"accuracy": 100.0 * float(accuracy_score(references, predictions))}


def _correlations(references, predictions) -> dict:
    """Undefined when either side is constant: reported as 0, as sklearn's Matthews correlation does."""
    if min(predictions) == max(predictions) or min(references) == max(references):
        return {"pearson": 0.0, "spearmanr": 0.0}
    return {"pearson": 100.0 * float(pearsonr(references, predictions)[0]),
            "spearmanr": 100.0 * float(spearmanr(references, predictions)[0])}


def _f1_accuracy(references, predictions) -> dict:
    return {"f1": 100.0 * float(f1_score(references, predictions, zero_division=0)), **_accuracy(references, predictions)}


def _macro(references, predictions) -> dict:
    return {**_accuracy(references, predictions),
            "macro_f1": 100.0 * float(f1_score(references, predictions, average="macro", zero_division=0))}


SCORES = {
    "cola": lambda r, p: {"matthews_correlation": 100.0 * float(matthews_corrcoef(r, p))},
    "mrpc": _f1_accuracy, "qqp": _f1_accuracy, "classification": _macro,
    "stsb": _correlations, "regression": _correlations,
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"glue metric: unknown configuration {self.config_name!r}; expected one of {CONFIGS}")
        value = datasets.Value("float32" if self.config_name in REGRESSION_CONFIGS else "int64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references):
        score = SCORES.get(self.config_name, _accuracy)
        return {**score(references, predictions), "examples": len(references)}
