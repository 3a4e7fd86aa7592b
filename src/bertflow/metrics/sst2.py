"""SST-2 (binary sentiment) metrics as an `evaluate` module: accuracy, precision, recall and F1
of the positive class (label 1) in percent, plus the confusion matrix; computed with scikit-learn."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (0 negative, 1 positive).
    references: gold labels.
Returns:
    accuracy, precision, recall, f1 (percent; positive class 1, 0 when undefined),
    confusion_matrix ([[tn, fp], [fn, tp]]), examples.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sst2(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references):
        precision, recall, f1, _ = precision_recall_fscore_support(
            references, predictions, average="binary", pos_label=1, zero_division=0
        )
        return {
            "accuracy": 100.0 * accuracy_score(references, predictions) if references else 0.0,
            "precision": 100.0 * float(precision),
            "recall": 100.0 * float(recall),
            "f1": 100.0 * float(f1),
            "confusion_matrix": confusion_matrix(references, predictions, labels=[0, 1]).tolist(),
            "examples": len(references),
        }
