"""Fine-tuning benchmark harness: pair order, pair ratios, arguments, and a tiny end-to-end run.

No timing is asserted (speed figures belong in docs/performance.md, with their command)."""

from __future__ import annotations

import json

import pytest

from benchmarks import finetune_bench as fb
from benchmarks.pairs import interleaved, ratio_summary
from bertflow.errors import ConfigError


def test_pairs_alternate_which_side_runs_first():
    assert interleaved(3, ("a", "b")) == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]


def test_summary_uses_per_pair_ratios_not_the_best_of_each_side():
    runs = []
    for round_, (base, ours) in enumerate([(100.0, 200.0), (50.0, 400.0), (100.0, 150.0)]):
        for side, speed in (("baseline", base), ("ours", ours)):
            runs.append({"side": side, "round": round_, "train_examples_per_s": speed, "eval_examples_per_s": speed,
                         "peak_memory_bytes": 2**20, "metrics": {"accuracy": 80.0}, "train_features": 10,
                         "eval_features": 5})
    summary = fb.summarise("sst2", runs)
    assert summary["train_speedup"] == ratio_summary([2.0, 8.0, 1.5])
    assert summary["train_speedup"]["median"] == 2.0  # best of each side would say 400 / 100 = 4.0
    assert summary["sides"]["ours"]["train_examples_per_s"] == 200.0
    assert "2.00x (pairs 1.50-8.00, n=3)" in fb.format_report([summary], "cpu")


def test_per_task_values_and_bad_arguments():
    assert fb.per_task("64") == {"sst2": 64, "squad": 64}
    assert fb.per_task("sst2=32,squad=none") == {"sst2": 32, "squad": None}
    with pytest.raises(ConfigError, match="unknown task"):
        fb.per_task("mnli=3")
    with pytest.raises(ConfigError, match="--sst2-dir: .*train.tsv not found"):
        fb.parse_args(["--sst2-dir", "/nonexistent"])
    with pytest.raises(ConfigError, match="--rounds"):
        fb.parse_args(["--rounds", "0"])


def test_tiny_sst2_run_on_generated_data(tmp_path, capsys):
    """Both sides in fresh processes on the same generated rows; one pair."""
    out = tmp_path / "bench"
    code = fb.main(["--tasks", "sst2", "--rounds", "1", "--train-samples", "32", "--eval-samples", "16",
                    "--max-length", "24", "--model-vocab", "300", "--tokenizer-vocab", "200", "--device", "cpu",
                    "--out", str(out)])
    assert code == 0
    result = json.loads((out / "finetune_bench.json").read_text())
    assert [(r["side"], r["round"]) for r in result["runs"]] == [("baseline", 0), ("ours", 0)]
    for r in result["runs"]:
        assert r["train_examples_per_s"] > 0 and r["eval_examples_per_s"] > 0 and r["peak_memory_bytes"] > 0
        assert r["train_features"] == 32 and r["eval_features"] == 16 and 0 <= r["metrics"]["accuracy"] <= 100
    baseline = next(r for r in result["runs"] if r["side"] == "baseline")
    assert baseline["optimizer"] == "adamw_torch_fused"  # TrainingArguments' default
    (summary,) = result["summaries"]
    assert summary["train_speedup"]["pairs"] == [pytest.approx(result["runs"][1]["train_examples_per_s"]
                                                               / baseline["train_examples_per_s"])]
    assert "ours / baseline: training" in capsys.readouterr().out


def test_run_order_gives_every_family_its_pair_each_round():
    assert fb.run_order(2, ["roberta", "albert"]) == [
        (0, "roberta", "baseline"), (0, "roberta", "ours"), (0, "albert", "baseline"), (0, "albert", "ours"),
        (1, "roberta", "ours"), (1, "roberta", "baseline"), (1, "albert", "ours"), (1, "albert", "baseline")]


def test_two_other_families_each_get_their_own_model_and_summary(tmp_path, capsys):
    """Per family a model of its own kind, both sides on the same generated rows, one pair each."""
    out = tmp_path / "bench"
    code = fb.main(["--tasks", "sst2", "--families", "roberta", "deberta-v2", "--rounds", "1",
                    "--train-samples", "32", "--eval-samples", "16", "--max-length", "24", "--model-vocab", "300",
                    "--tokenizer-vocab", "300", "--device", "cpu", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "finetune_bench.json").read_text())
    assert [(r["family"], r["side"]) for r in result["runs"]] == [
        ("roberta", "baseline"), ("roberta", "ours"), ("deberta-v2", "baseline"), ("deberta-v2", "ours")]
    assert [s["family"] for s in result["summaries"]] == ["roberta", "deberta-v2"]
    for summary in result["summaries"]:
        for side in summary["sides"].values():
            assert side["train_examples_per_s"] > 0 and side["eval_examples_per_s"] > 0
            assert side["peak_memory_bytes"] > 0 and 0 <= side["metric_per_round"][0] <= 100
        assert summary["train_speedup"]["median"] > 0 and summary["eval_speedup"]["median"] > 0
    # RoBERTa has BERT's layer layout, which the unpadded encoder serves; DeBERTa-v3 runs padded
    assert [s["ours_unpadded"] for s in result["summaries"]] == [True, False]
    report = capsys.readouterr().out
    assert "| sst2 | roberta | unpadded |" in report and "| sst2 | deberta-v2 | padded |" in report
    assert fb.main(["--report", str(out / "finetune_bench.json")]) == 0  # the same summaries, from the file
    assert fb.family_table(result["summaries"]) in capsys.readouterr().out
