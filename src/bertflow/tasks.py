"""The fine-tuning tasks: the nine GLUE tasks, SQuAD, and text tasks defined in the config.

A `TextTask` says what fine-tuning needs to know of a classification or regression task: its text
columns (one, or a pair), its kind and label values, its official metrics and its display name.
For the GLUE tasks it also holds the layout of the files GLUE's download script writes
(`GlueLayout`) and the Hub's `glue/<task>` columns. Light imports only: the workflow reads this
module on every `snakemake` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError

CLASSIFICATION, REGRESSION = "classification", "regression"
QA_TASKS = ("squad",)
# The columns of the prepared TSV (results/data/<task>/): one text, or a pair.
SINGLE_COLUMNS, PAIR_COLUMNS = ("sentence",), ("sentence1", "sentence2")
# MNLI's validation TSV has one more column saying which of its two validation sets a row is from.
VALIDATION_SET_COLUMN = "validation_set"


@dataclass(frozen=True)
class GlueLayout:
    """A GLUE task's TSV files as GLUE's download script writes them. `header` None: no header line,
    columns by position (CoLA). `validation`: the dev file of each validation set."""

    text: tuple  # column names (or positions) of the text(s)
    label: str | int
    header: bool = True
    validation: dict = field(default_factory=lambda: {"": "dev.tsv"})
    hub_text: tuple = SINGLE_COLUMNS  # the Hub dataset glue/<task>'s text columns
    hub_validation: dict = field(default_factory=lambda: {"": "validation"})  # set -> Hub split


@dataclass(frozen=True)
class TextTask:
    """A classification or regression task on one text or a pair of texts.

    `labels`: the label values as the data files write them, in the order of the class ids
    (GLUE: the Hub's ClassLabel order); None for a custom task, whose labels are the sorted values
    of its training file. `label_names`: the id2label names (default: the values themselves)."""

    name: str
    label: str  # display name
    kind: str
    pair: bool
    metrics: tuple  # the official metric keys, in display order
    metric_config: str  # configuration of the `glue` evaluate module (bertflow/metrics/glue.py)
    labels: tuple | None = None
    label_names: tuple | None = None
    glue: bool = False
    layout: GlueLayout | None = None

    @property
    def columns(self) -> tuple:
        return PAIR_COLUMNS if self.pair else SINGLE_COLUMNS

    @property
    def validation_sets(self) -> tuple:
        return tuple(self.layout.validation) if self.layout else ("",)

    def id2label(self, labels: tuple) -> dict[int, str]:
        return dict(enumerate(self.label_names or labels))

    def contract(self) -> dict:
        """The keys every run's metrics.json carries about its task."""
        return {"task_metrics": list(self.metrics), "task_label": self.label, "glue": self.glue}


BINARY = ("0", "1")
NLI3 = ("entailment", "neutral", "contradiction")
NLI2 = ("entailment", "not_entailment")
PAIR_HUB = PAIR_COLUMNS
F1_ACC, ACC = ("f1", "accuracy"), ("accuracy",)


def _glue(name, label, layout, metrics, labels=BINARY, label_names=None, kind=CLASSIFICATION, config=None):
    return TextTask(name=name, label=label, kind=kind, pair=len(layout.text) == 2, metrics=metrics,
                    metric_config=config or name, labels=labels, label_names=label_names, glue=True, layout=layout)


GLUE_TASKS: dict[str, TextTask] = {task.name: task for task in (
    _glue("cola", "CoLA", GlueLayout(text=(3,), label=1, header=False), ("matthews_correlation",),
          label_names=("unacceptable", "acceptable")),
    _glue("sst2", "SST-2", GlueLayout(text=("sentence",), label="label"), ACC, label_names=("negative", "positive")),
    _glue("mrpc", "MRPC", GlueLayout(text=("#1 String", "#2 String"), label="Quality", hub_text=PAIR_HUB), F1_ACC,
          label_names=("not_equivalent", "equivalent")),
    _glue("stsb", "STS-B", GlueLayout(text=("sentence1", "sentence2"), label="score", hub_text=PAIR_HUB),
          ("pearson", "spearmanr"), labels=None, kind=REGRESSION),
    _glue("qqp", "QQP", GlueLayout(text=("question1", "question2"), label="is_duplicate",
                                   hub_text=("question1", "question2")), F1_ACC,
          label_names=("not_duplicate", "duplicate")),
    _glue("mnli", "MNLI", GlueLayout(
        text=("sentence1", "sentence2"), label="gold_label", hub_text=("premise", "hypothesis"),
        validation={"matched": "dev_matched.tsv", "mismatched": "dev_mismatched.tsv"},
        hub_validation={"matched": "validation_matched", "mismatched": "validation_mismatched"}),
        ("accuracy_matched", "accuracy_mismatched"), labels=NLI3),
    _glue("qnli", "QNLI", GlueLayout(text=("question", "sentence"), label="label", hub_text=("question", "sentence")),
          ACC, labels=NLI2),
    _glue("rte", "RTE", GlueLayout(text=("sentence1", "sentence2"), label="label", hub_text=PAIR_HUB), ACC,
          labels=NLI2),
    _glue("wnli", "WNLI", GlueLayout(text=("sentence1", "sentence2"), label="label", hub_text=PAIR_HUB), ACC,
          label_names=("not_entailment", "entailment")),
)}
GLUE_NAMES = tuple(GLUE_TASKS)
# Custom tasks are scored with these configurations of the `glue` evaluate module.
CUSTOM_METRICS = {CLASSIFICATION: ("accuracy", "macro_f1"), REGRESSION: ("pearson", "spearmanr")}


def custom_task(name: str, section: dict) -> TextTask:
    """The task `finetune.custom.<name>` of the config."""
    kind = section["kind"]
    return TextTask(name=name, label=section.get("label") or name, kind=kind,
                    pair=len(section["text_columns"]) == 2, metrics=CUSTOM_METRICS[kind], metric_config=kind)


def configured_tasks(finetune: dict) -> list[str]:
    """The tasks this config runs (finetune.tasks), in its order."""
    return list(dict.fromkeys(finetune["tasks"]))


def text_task(name: str, finetune: dict | None = None) -> TextTask:
    """The classification/regression task `name`: a GLUE task, or one of finetune.custom."""
    if name in GLUE_TASKS:
        return GLUE_TASKS[name]
    custom = (finetune or {}).get("custom", {})
    if name in custom:
        return custom_task(name, custom[name])
    raise ConfigError(f"finetune.tasks: unknown task {name!r}; expected a GLUE task ({', '.join(GLUE_NAMES)}), "
                      f"squad, or a task defined under finetune.custom (defined: {sorted(custom) or 'none'})")


def task_problems(finetune: dict) -> list[str]:
    """finetune.tasks names only known tasks; custom names do not shadow GLUE or SQuAD ones."""
    custom = finetune.get("custom", {})
    problems = [f"finetune.custom.{name}: the name is a built-in task; rename it"
                for name in custom if name in GLUE_TASKS or name in QA_TASKS]
    for name in configured_tasks(finetune):
        if name not in QA_TASKS:
            try:
                text_task(name, finetune)
            except ConfigError as err:
                problems.append(str(err))
    return problems


def task_section(finetune: dict, name: str) -> dict:
    """The config section of a task: finetune.<glue task or squad>, or finetune.custom.<name>."""
    return finetune["custom"][name] if name in finetune.get("custom", {}) else finetune[name]


def section_key(finetune: dict, name: str) -> str:
    return f"finetune.custom.{name}" if name in finetune.get("custom", {}) else f"finetune.{name}"
