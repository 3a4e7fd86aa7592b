"""End-to-end fine-tuning through the Python API (tiny model, few examples, one epoch).

The full Snakemake run is covered by tests/test_workflow.py; these tests pin the stage functions
that the rules and a distributed launcher (`python -m bertflow.finetune SPEC.json`) call.
"""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from bertflow import finetune as ft
from bertflow.io import read_json, write_json
from bertflow.task_data import prepare_squad, prepare_text_task
from bertflow.tasks import GLUE_TASKS

from support.finetune import make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_sst2_spec_json_entry_writes_complete_outputs(model_dir, tmp_path):
    data = tmp_path / "data"
    prepare_text_task(GLUE_TASKS["sst2"], source="generated",
                      generated={"train_examples": 64, "validation_examples": 20, "seed": 3},
                      out_train=str(data / "train.tsv"), out_validation=str(data / "validation.tsv"))
    spec = {"task": "sst2", "model_name": "tiny", "model_dir": model_dir, "train_file": str(data / "train.tsv"),
            "validation_file": str(data / "validation.tsv"), "out_dir": str(tmp_path / "run"), "seed": 1,
            "device": "cpu", "settings": {"epochs": 1, "batch_size": 16, "max_length": 24}}
    write_json(tmp_path / "spec.json", spec)
    assert ft.main([str(tmp_path / "spec.json")]) == 0  # what torchrun/accelerate launch runs per process

    metrics = read_json(tmp_path / "run" / "metrics.json")
    for key in ("accuracy", "precision", "recall", "f1"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 100.0, key
    matrix = metrics["confusion_matrix"]
    assert sum(map(sum, matrix)) == metrics["validation_examples"] == 20
    assert metrics["accuracy"] == pytest.approx(100.0 * (matrix[0][0] + matrix[1][1]) / 20)
    assert len(metrics["epochs"]) == 1 and metrics["finetune_wall_time_s"] > 0
    assert metrics["compute_precision"] == "fp32" and metrics["processes"] == 1
    assert metrics["environment"]["packages"]["torch"] == torch.__version__
    with open(tmp_path / "run" / "epochs.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1]
    assert len(read_json(tmp_path / "run" / "predictions.json")) == 20


def test_squad_with_reduced_vocab_saves_the_full_vocabulary(model_dir, tmp_path):
    data = tmp_path / "data"
    prepare_squad(source="generated", generated={"train_articles": 6, "validation_articles": 2, "seed": 5},
                  out_train=str(data / "train.json"), out_validation=str(data / "validation.json"))
    metrics = ft.finetune(
        task="squad", model_dir=model_dir, train_file=str(data / "train.json"),
        validation_file=str(data / "validation.json"), out_dir=str(tmp_path / "run"), seed=2, device="cpu",
        settings={"epochs": 1, "batch_size": 8, "max_length": 64, "doc_stride": 16, "reduce_vocab": True},
    )
    assert 0.0 <= metrics["exact_match"] <= metrics["f1"] <= 100.0
    assert metrics["questions"] == 2 * 6
    predictions = read_json(tmp_path / "run" / "predictions.json")
    gold = read_json(data / "validation.json")
    assert set(predictions) == {qa["id"] for a in gold["data"] for p in a["paragraphs"] for qa in p["qas"]}

    stats = metrics["vocab_reduction"]
    assert 0 < stats["vocab_kept"] < stats["vocab_full"] and 0 < stats["model_size_reduction_pct"] < 100
    pretrained = load_file(f"{model_dir}/model.safetensors")["bert.embeddings.word_embeddings.weight"]
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")["bert.embeddings.word_embeddings.weight"]
    assert saved.shape == pretrained.shape  # full vocabulary restored before saving
    changed = (saved != pretrained).any(dim=1)
    assert 0 < int(changed.sum()) <= stats["vocab_kept"]  # trained rows changed, unused rows did not
