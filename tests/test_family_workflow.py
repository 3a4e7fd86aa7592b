"""Every encoder family through the workflow: one run with a tiny model of each family as a local
`finetune.baselines` folder fine-tunes SST-2 and SQuAD, reports parameters, benchmarks inference and
gives each family its row in the leaderboard."""

from __future__ import annotations

import csv
import json

import pytest

from support.families import FAMILIES, family_model
from support.workflow import snakemake, write_config

pytestmark = pytest.mark.slow  # an end-to-end workflow run

UNPADDED = {"bert", "roberta", "xlm-roberta", "electra"}  # unpad: auto on CPU


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("family_run")
    baselines = {family.replace("-", "_"): family_model(family, str(root / "models")) for family in FAMILIES}
    # The benchmark includes our pretrained model: the smallest pretraining that still runs.
    config = write_config(root / "config.yaml", corpus={"source": "generated", "generated": {"num_sentences": 400,
                                                                                            "seed": 3}},
                          pretrain={"epochs": 1}, finetune={
        "baselines": baselines, "seeds": [1],
        "sst2": {"generated": {"train_examples": 32, "validation_examples": 16}, "max_length": 24, "epochs": 1,
                 "batch_size": 8, "learning_rate": 1.0e-3},
        "squad": {"generated": {"train_articles": 2, "validation_articles": 1}, "max_length": 64, "doc_stride": 16,
                  "epochs": 1, "batch_size": 8, "learning_rate": 1.0e-3, "max_train_samples": 16,
                  "max_eval_samples": 8},
    })
    # One thread per fine-tuning, two side by side: twenty tiny runs, mostly start-up time.
    snakemake(root / "run", "results/leaderboard.csv", "--set-threads", "finetune=1", configfile=config)
    return root / "run" / "results", baselines


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_fine_tunes_both_tasks(family_run, family):
    results, baselines = family_run
    name = family.replace("-", "_")
    for task, metrics in (("sst2", ["accuracy"]), ("squad", ["exact_match", "f1"])):
        run = json.loads((results / "finetune" / task / name / "seed1" / "metrics.json").read_text())
        summary = json.loads((results / "finetune" / task / name / "summary.json").read_text())
        for metric in metrics:
            assert 0.0 <= run[metric] <= 100.0 and summary["mean"][metric] == run[metric], (task, metric)
        assert run["unpadded"] == (family in UNPADDED), run["unpad_reason"]
        assert run["validation_examples"] > 0 and run["finetune_wall_time_s"] > 0


def test_the_inference_benchmark_measures_every_family(family_run):
    results, baselines = family_run
    with open(results / "benchmark" / "inference.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for name in baselines:
        measured = [row for row in rows if row["model"] == name]
        assert measured and all(float(row["latency_ms_median"]) > 0 for row in measured), name


def test_every_family_has_a_parameter_report_and_a_leaderboard_row(family_run):
    results, baselines = family_run
    with open(results / "leaderboard.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    for name in baselines:
        report = json.loads((results / "reports" / "params" / f"{name}.json").read_text())
        sst2 = json.loads((results / "finetune" / "sst2" / name / "summary.json").read_text())
        row = rows[name]
        assert int(row["parameters"]) == report["parameters"]["base_model"] > 0, name
        assert float(row["sst2_accuracy"]) == pytest.approx(sst2["mean"]["accuracy"]), name
        assert int(row["vocab_size"]) == report["vocab_size"] and row["rank"], name
