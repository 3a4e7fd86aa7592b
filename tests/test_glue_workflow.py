"""Every GLUE task, a custom CSV classification task (string labels) and a custom regression task
on pairs, fine-tuned through the workflow in one run: small cuts of the real GLUE files in
../shared/data (the test skips without them) and generated rows for MNLI, QNLI and QQP."""

from __future__ import annotations

import json

import pytest
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, matthews_corrcoef

from bertflow.tasks import GLUE_TASKS
from support.glue import ON_DISK, cut_shared, write_generated
from support.workflow import snakemake, write_config

TRAINING = {"source": "local", "max_length": 32, "epochs": 1, "batch_size": 8, "learning_rate": 1.0e-3}
CUSTOM_TRAINING = {k: v for k, v in TRAINING.items() if k != "source"}
RATINGS = [("a good film", "a great film", 4.5), ("a bad film", "a good film", 1.0), ("the cat", "a cat", 3.5),
           ("a dog runs", "the river", 0.5)]


def custom_files(root):
    reviews = {"train": root / "reviews_train.csv", "validation": root / "reviews_dev.csv"}
    moods = ["great", "poor", "okay"]
    for split, n in (("train", 24), ("validation", 12)):
        rows = [f'"review {i}, {moods[i % 3]} film",{moods[i % 3]}' for i in range(n)]
        reviews[split].write_text("text,verdict\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ratings = {"train": root / "ratings_train.jsonl", "validation": root / "ratings_dev.jsonl"}
    for split, repeat in (("train", 6), ("validation", 3)):
        lines = [json.dumps({"first": a, "second": b, "score": s}) for a, b, s in RATINGS * repeat]
        ratings[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "reviews": {"train": str(reviews["train"]), "validation": str(reviews["validation"]), "format": "csv",
                    "text_columns": ["text"], "label_column": "verdict", "kind": "classification",
                    "label": "Reviews", **CUSTOM_TRAINING},
        "ratings": {"train": str(ratings["train"]), "validation": str(ratings["validation"]),
                    "text_columns": ["first", "second"], "label_column": "score", "kind": "regression",
                    **CUSTOM_TRAINING},
    }


def read(path):
    return json.loads(path.read_text())


@pytest.mark.slow
def test_every_glue_task_and_custom_tasks_run_through_the_workflow(tiny_run_copy, tmp_path):
    """On a copy of the tiny run: its pretrained model is reused, only the new tasks run."""
    data = tmp_path / "data"
    sections = {task: {**TRAINING, "local": cut_shared(task, data)} for task in [*ON_DISK, "sst2"]}
    sections.update({task: {**TRAINING, "local": write_generated(task, data, n=32)} for task in ("mnli", "qnli", "qqp")})
    custom = custom_files(data)
    tasks = [*GLUE_TASKS, *custom]
    config = write_config(tmp_path / "config.yaml", finetune={"seeds": [1], "tasks": tasks, "custom": custom, **sections})
    targets = [f"results/finetune/{task}/pretrained/summary.json" for task in tasks]
    # One thread per fine-tuning, two side by side: a dozen tiny runs, mostly start-up time.
    snakemake(tiny_run_copy, *targets, "--set-threads", "finetune=1", configfile=config)
    check_runs(tiny_run_copy / "results", tasks, custom)


def check_runs(results, tasks, custom):
    for task in tasks:
        run = results / "finetune" / task / "pretrained" / "seed1"
        metrics, predictions = read(run / "metrics.json"), read(run / "predictions.json")
        assert metrics["glue"] is (task in GLUE_TASKS)
        assert metrics["task_label"] == (GLUE_TASKS[task].label if task in GLUE_TASKS else custom[task].get("label", task))
        for key in metrics["task_metrics"]:
            assert -100.0 <= metrics[key] <= 100.0, (task, key)
        assert len(predictions) == metrics["validation_examples"]
        summary = read(results / "finetune" / task / "pretrained" / "summary.json")
        assert set(summary["mean"]) >= set(metrics["task_metrics"])
        assert {k: summary[k] for k in ("task_metrics", "task_label", "glue")} == {
            k: metrics[k] for k in ("task_metrics", "task_label", "glue")}
        model_config = read(run / "model" / "config.json")
        gold = [p["label"] for p in predictions]
        guess = [p["prediction"] for p in predictions]
        if task in ("stsb", "ratings"):  # regression: one output, scored by correlation
            assert len(model_config["id2label"]) == 1 and model_config["problem_type"] == "regression"
            assert metrics["pearson"] == pytest.approx(100 * pearsonr(gold, guess)[0] if len(set(guess)) > 1 else 0.0,
                                                       abs=1e-3)
        elif task == "mnli":
            assert metrics["task_metrics"] == ["accuracy_matched", "accuracy_mismatched"]
            assert len(predictions) == 64 and len(model_config["id2label"]) == 3
            assert metrics["accuracy_matched"] == pytest.approx(100 * accuracy_score(gold[:32], guess[:32]))
            assert metrics["accuracy_mismatched"] == pytest.approx(100 * accuracy_score(gold[32:], guess[32:]))
        elif task == "cola":
            assert metrics["matthews_correlation"] == pytest.approx(100 * matthews_corrcoef(gold, guess))
        else:
            assert metrics["accuracy"] == pytest.approx(100 * accuracy_score(gold, guess))
        if task == "reviews":  # labels from the training file, sorted, saved as id2label
            assert model_config["id2label"] == {"0": "great", "1": "okay", "2": "poor"}
        pair = task in ("ratings", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
        assert ("sentence2" in predictions[0]) is pair
    assert read(results / "finetune" / "cola" / "pretrained" / "seed1" / "metrics.json")["task_metrics"] == [
        "matthews_correlation"]
