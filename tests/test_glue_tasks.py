"""GLUE tasks and tasks on your own files: readers, label checks, metrics, start-up checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bertflow import task_data
from bertflow.checks import finetune_problems
from bertflow.errors import DataError
from bertflow.metrics import load
from bertflow.tasks import GLUE_TASKS, custom_task
from support.glue import ON_DISK, cut_shared, write_generated

# Row counts of the real files (../shared/data/README.md), read whole.
REAL_ROWS = {"cola": (8551, 1043), "mrpc": (3668, 408), "rte": (2490, 277), "stsb": (5749, 1500), "wnli": (635, 71)}


def prepare(task, files, tmp_path, source="local", **kwargs):
    out = tmp_path / "prepared" / task.name
    counts = task_data.prepare_text_task(task, source=source, local_files=files, out_train=str(out / "train.tsv"),
                                         out_validation=str(out / "validation.tsv"), **kwargs)
    return counts, task_data.read_prepared_tsv(str(out / "train.tsv")), task_data.read_prepared_tsv(
        str(out / "validation.tsv"))


@pytest.mark.parametrize("task", sorted(REAL_ROWS))
def test_real_glue_files_are_read_whole_in_their_layout(task, tmp_path):
    cut_shared(task, tmp_path, rows=1)  # skips when the shared folder is absent
    from support.glue import SHARED

    folder = SHARED / "glue" / ON_DISK[task]
    files = {"train": str(folder / "train.tsv"), "validation": str(folder / "dev.tsv")}
    counts, train, validation = prepare(GLUE_TASKS[task], files, tmp_path)
    assert (counts["train"], counts["validation"]) == REAL_ROWS[task]
    assert all(len(e.texts) == (1 if task == "cola" else 2) and all(t.strip() for t in e.texts) for e in train)
    if task == "stsb":
        assert all(0.0 <= float(e.label) <= 5.0 for e in train + validation)
    else:
        assert {e.label for e in train} == set(GLUE_TASKS[task].labels)


def test_mrpc_bom_and_header_and_cola_without_header(tmp_path):
    files = cut_shared("mrpc", tmp_path, rows=20)
    _, train, _ = prepare(GLUE_TASKS["mrpc"], files, tmp_path)
    assert open(files["train"], "rb").read(3) == b"\xef\xbb\xbf"  # the cut kept the BOM
    assert len(train) == 20 and train[0].label in ("0", "1")
    cola = cut_shared("cola", tmp_path, rows=20)
    _, train, _ = prepare(GLUE_TASKS["cola"], cola, tmp_path)
    assert len(train) == 20 and not train[0].texts[0].startswith(("gj04", "0", "1"))


@pytest.mark.parametrize("task", ["mnli", "qnli", "qqp"])
def test_generated_rows_in_the_layout_of_the_tasks_not_on_disk(task, tmp_path):
    files = write_generated(task, tmp_path, n=30)
    counts, train, validation = prepare(GLUE_TASKS[task], files, tmp_path)
    assert counts["train"] == 30 and len(train[0].texts) == 2
    assert {e.label for e in train} <= set(GLUE_TASKS[task].labels)
    if task == "mnli":  # both dev sets, each marked
        assert counts["validation_matched"] == counts["validation_mismatched"] == 30
        assert [e.validation_set for e in validation] == ["matched"] * 30 + ["mismatched"] * 30
    else:
        assert counts["validation"] == 30


def test_hub_glue_split_maps_class_ids_to_the_file_labels(tmp_path):
    import datasets

    rows = {"premise": ["a cat .", "a dog ."], "hypothesis": ["an animal .", "a cat ."], "label": [0, 2], "idx": [0, 1]}
    split = datasets.Dataset.from_dict(rows)
    datasets.DatasetDict({"train": split, "validation_matched": split, "validation_mismatched": split,
                          "test_matched": split.map(lambda r: {"label": -1})}).save_to_disk(tmp_path / "mnli")
    counts, train, validation = prepare(GLUE_TASKS["mnli"], {}, tmp_path, source="hub", hub_dir=str(tmp_path / "mnli"),
                                        hub_splits={"train": "train", "validation": None})
    assert [e.label for e in train] == ["entailment", "contradiction"] and counts["validation"] == 4
    with pytest.raises(DataError, match=r"split test_matched\), row 0: label -1 is not a class id 0-2"):
        prepare(GLUE_TASKS["mnli"], {}, tmp_path, source="hub", hub_dir=str(tmp_path / "mnli"),
                hub_splits={"train": "test_matched", "validation": None})


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return str(path)


CUSTOM = {"text_columns": ["review"], "label_column": "stars", "kind": "classification", "format": None}


def custom_files(tmp_path, train, validation, section=CUSTOM, suffix="csv"):
    files = {"train": write(tmp_path / f"train.{suffix}", train), "validation": write(tmp_path / f"dev.{suffix}", validation)}
    return custom_task("reviews", section), files, section


def prepare_custom(tmp_path, train, validation, section=CUSTOM, suffix="csv"):
    task, files, section = custom_files(tmp_path, train, validation, section, suffix)
    return prepare(task, files, tmp_path, source="custom", section=section)


def test_custom_csv_string_labels_are_sorted_from_the_training_file(tmp_path):
    counts, train, validation = prepare_custom(
        tmp_path, 'review,stars\n"good, really",great\nbad,poor\nfine,okay\n', "review,stars\nmeh,okay\n")
    assert counts["labels"] == ["great", "okay", "poor"] and train[0].texts == ("good, really",)
    numeric = {**CUSTOM, "label_column": "y"}
    counts, _, _ = prepare_custom(tmp_path, "review,y\na,10\nb,2\nc,1\n", "review,y\nd,2\n", numeric)
    assert counts["labels"] == ["1", "2", "10"]  # numbers sort as numbers


@pytest.mark.parametrize("train, validation, section, message", [
    ("review,stars\ngood,great\n", "review,stars\nbad,awful\n", CUSTOM,
     r"dev.csv, line 2, column 'stars': label 'awful' is not one of the labels \['great'\]"),
    ("review,stars\ngood,great\n ,poor\n", "review,stars\nok,great\n", CUSTOM,
     r"train.csv, line 3: empty text in column 'review'"),
    ("text,stars\ngood,great\n", "text,stars\nok,great\n", CUSTOM, r"train.csv, line 2: missing column 'review'"),
    ("review,stars\ngood,high\n", "review,stars\nok,1.5\n", {**CUSTOM, "kind": "regression"},
     r"train.csv, line 2, column 'stars': label 'high' is not a number, but reviews is a regression task"),
    ("review,stars\ngood,great\n", "review,stars\nok,great\n", {**CUSTOM, "text_columns": ["review", "reply"]},
     r"train.csv, line 2: missing column 'reply'"),
])
def test_custom_data_errors_name_file_line_and_column(tmp_path, train, validation, section, message):
    with pytest.raises(DataError, match=message):
        prepare_custom(tmp_path, train, validation, section)


def test_custom_json_jsonl_and_a_file_that_is_not_utf8(tmp_path):
    pair = {**CUSTOM, "text_columns": ["a", "b"], "kind": "regression", "label_column": "score"}
    counts, train, _ = prepare_custom(tmp_path, '{"a": "x y", "b": "z", "score": 1.5}\n\n{"a": "u", "b": "v", "score": 3}\n',
                                      '{"a": "p", "b": "q", "score": 0}\n', pair, suffix="jsonl")
    assert counts["train"] == 2 and train[1].texts == ("u", "v") and train[1].label == "3"
    counts, _, _ = prepare_custom(tmp_path, '{"data": [{"a": "x", "b": "y", "score": 2}]}',
                                  '[{"a": "x", "b": "y", "score": 2}]', pair, suffix="json")
    assert counts["validation"] == 1
    with pytest.raises(DataError, match=r"dev.jsonl, line 1: missing column 'b'"):
        prepare_custom(tmp_path, '{"a": "x", "b": "y", "score": 2}\n', '{"a": "x", "score": 2}\n', pair, suffix="jsonl")
    task, files, section = custom_files(tmp_path, "review,stars\nok,great\n", "review,stars\nok,great\n")
    write(tmp_path / "train.csv", "review,stars\nok,great\ncaf\u00e9,poor\n", encoding="cp1252")
    with pytest.raises(DataError, match=r"train.csv: data file is not UTF-8 text: byte 0xe9 at line 3, .* `iconv -f latin1 -t utf-8"):
        prepare(task, files, tmp_path, source="custom", section=section)


def test_glue_file_errors(tmp_path):
    single = write(tmp_path / "rte.tsv", "index\tsentence\tlabel\n0\ta cat .\tentailment\n")
    with pytest.raises(DataError, match=r"rte.tsv, line 1: missing column 'sentence1' .* rte is a sentence-pair task"):
        task_data.read_glue_tsv(single, GLUE_TASKS["rte"])
    wrong = write(tmp_path / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n")
    with pytest.raises(DataError, match=r"dev.tsv, line 2, column 'label': label 'neutral' is not one of the labels"):
        prepare(GLUE_TASKS["rte"], {"train": wrong, "validation": wrong}, tmp_path)
    quotes = write(tmp_path / "q.tsv", 'index\tsentence1\tsentence2\tlabel\n0\t"an odd\tquote .\tentailment\n')
    assert task_data.read_glue_tsv(quotes, GLUE_TASKS["rte"])[0].texts == ('"an odd', "quote .")  # QUOTE_NONE


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("config, expected", [
    ("cola", lambda r, p: {"matthews_correlation": matthews_corrcoef(r, p)}),
    ("mrpc", lambda r, p: {"f1": f1_score(r, p), "accuracy": accuracy_score(r, p)}),
    ("qqp", lambda r, p: {"f1": f1_score(r, p), "accuracy": accuracy_score(r, p)}),
    ("rte", lambda r, p: {"accuracy": accuracy_score(r, p)}),
    ("mnli", lambda r, p: {"accuracy": accuracy_score(r, p)}),
    ("classification", lambda r, p: {"accuracy": accuracy_score(r, p), "macro_f1": f1_score(r, p, average="macro")}),
])
def test_classification_metrics_equal_sklearn(config, expected):
    classes = 3 if config in ("mnli", "classification") else 2
    references, predictions = RNG.integers(0, classes, 200), RNG.integers(0, classes, 200)
    scores = load("glue", config).compute(predictions=predictions, references=references)
    for key, value in expected(references, predictions).items():
        assert scores[key] == pytest.approx(100 * value)
    assert scores["examples"] == 200


@pytest.mark.parametrize("config", ["stsb", "regression"])
def test_correlations_equal_scipy(config):
    references = RNG.uniform(0, 5, 200)
    predictions = references + RNG.normal(0, 1.5, 200)
    scores = load("glue", config).compute(predictions=predictions, references=references)
    gold, guess = references.astype(np.float32), predictions.astype(np.float32)  # the module's feature type
    assert scores["pearson"] == pytest.approx(100 * pearsonr(gold, guess)[0], rel=1e-5)
    assert scores["spearmanr"] == pytest.approx(100 * spearmanr(gold, guess)[0], rel=1e-5)
    assert load("glue", config).compute(predictions=[1.0] * 5, references=[0, 1, 2, 3, 4])["pearson"] == 0.0


def test_task_names_are_checked_at_start():
    finetune = {"tasks": ["sst2", "mrcp", "mine"], "custom": {"mine": {**CUSTOM, "train": "t", "validation": "v"},
                                                            "rte": CUSTOM}}
    problems = finetune_problems(finetune, 512)
    assert any("finetune.tasks: unknown task 'mrcp'; expected a GLUE task" in p and "(defined: ['mine', 'rte'])" in p
               for p in problems)
    assert "finetune.custom.rte: the name is a built-in task; rename it" in problems
