"""Summary report: leaderboard (ranking, GLUE score, columns, CSV), vocabulary reduction, sections, benchmark table."""

from __future__ import annotations

import csv
import json

import pytest
from support.report import PERPLEXITY_ROWS, summary

from bertflow.io import write_json
from bertflow.errors import DataError
from bertflow.summary import leaderboard, summarize_seeds, write_summary


def params(vocab=300, d=64, total=1000, folder_bytes=2048):
    return {"architecture": "BertForMaskedLM", "vocab_size": vocab, "d_model": d, "d_ff": 4 * d, "layers": 2,
            "max_positions": 512, "parameters": {"total": total, "embeddings": 10, "per_layer": 20, "head": 5,
                                                 "base_model": total - 5},
            "word_embeddings": {"params": vocab * d, "bytes": {"fp32": vocab * d * 4, "fp16": vocab * d * 2}},
            "files": {"folder_bytes": folder_bytes}}


def entry(accuracy=None, squad=None, **kw):
    out = {"params": params(**kw)}
    if accuracy is not None:
        out["sst2"] = summary("sst2", "m", {"accuracy": accuracy, "finetune_wall_time_s": 10.0})
    if squad is not None:
        out["squad"] = summary("squad", "m", {"exact_match": squad[0], "f1": squad[1], "finetune_wall_time_s": 5.0})
    return out


def test_leaderboard_without_glue_tasks_ranks_by_the_first_tasks_first_metric():
    models = {"a": entry(squad=(10, 20)), "b": entry(squad=(30, 5)), "c": entry(squad=(10, 40)), "d": entry()}
    board = leaderboard(models, ["squad"])
    assert board["rank_by"] == "SQuAD v1.1 exact_match" and board["glue_tasks"] == []
    assert [(r["model"], r["rank"]) for r in board["rows"]] == [("b", 1), ("a", 2), ("c", 2), ("d", None)]
    assert board["rows"][1]["squad_finetune_wall_time_s"] == 5.0 and board["rows"][3]["squad_f1"] is None


def glue_entry(cola, mrpc, stsb, squad_em):
    """Metrics as the GLUE tasks' metrics.json carry them: task_metrics, task_label, glue."""
    def task(name, label, glue, mean):
        return {**summary(name, "m", {**mean, "finetune_wall_time_s": 7.0, "train_examples_per_s": 50.0}),
                "task_metrics": list(mean), "task_label": label, "glue": glue}
    return {"params": params(), "cola": task("cola", "CoLA", True, {"matthews_correlation": cola}),
            "mrpc": task("mrpc", "MRPC", True, dict(zip(("f1", "accuracy"), mrpc))),
            "stsb": task("stsb", "STS-B", True, dict(zip(("pearson", "spearmanr"), stsb))),
            "squad": task("squad", "SQuAD v2.0", False, {"exact_match": squad_em, "f1": squad_em + 5})}


def test_glue_score_averages_each_tasks_metrics_first_and_ranks_by_it():
    models = {"x": glue_entry(10.0, (80.0, 70.0), (60.0, 50.0), 99.0),  # (10 + 75 + 55) / 3 = 46.67
              "y": glue_entry(40.0, (90.0, 90.0), (10.0, 20.0), 1.0)}  # (40 + 90 + 15) / 3 = 48.33
    board = leaderboard(models, ["cola", "mrpc", "stsb", "squad"])
    assert board["glue_tasks"] == ["cola", "mrpc", "stsb"] and board["rank_by"] == "the GLUE score"
    rows = {r["model"]: r for r in board["rows"]}
    assert rows["x"]["glue_score"] == pytest.approx(140 / 3) and rows["y"]["glue_score"] == pytest.approx(145 / 3)
    assert [r["model"] for r in board["rows"]] == ["y", "x"] and rows["y"]["rank"] == 1
    assert rows["x"]["mrpc_accuracy"] == 70.0 and rows["x"]["stsb_spearmanr"] == 50.0
    assert rows["x"]["cola_train_examples_per_s"] == 50.0 and rows["x"]["parameters"] == 995
    # A model without one GLUE task has no GLUE score (and no rank), not a score over fewer tasks.
    del models["x"]["stsb"]
    rows = {r["model"]: r for r in leaderboard(models, ["cola", "mrpc", "stsb", "squad"])["rows"]}
    assert rows["x"]["glue_score"] is None and rows["x"]["rank"] is None and rows["y"]["rank"] == 1


def test_report_follows_the_task_list_and_writes_the_csv(tmp_path):
    models = {"x": glue_entry(10.0, (80.0, 70.0), (60.0, 50.0), 99.0)}
    models["x"]["sst2"] = {**summary("sst2", "x", {"accuracy": 91.0}), "task_metrics": ["accuracy"],
                           "task_label": "SST-2", "glue": True,
                           "vocab_reduction": {"vocab_full": 300, "vocab_kept": 120, "vocab_reduction_pct": 60.0,
                                               "model_size_reduction_pct": 12.345}}
    files = {}
    for key, value in models["x"].items():
        write_json(tmp_path / f"{key}.json", value)
        files[key] = str(tmp_path / f"{key}.json")
    text = _write_page(tmp_path, {"x": files}, tasks=["stsb", "sst2", "cola", "mrpc", "squad"])
    header = next(line for line in text.splitlines() if line.startswith("| model | seq_len"))
    assert header.startswith("| model | seq_len | download size | STS-B Pearson | STS-B Spearman | SST-2 acc | CoLA MCC "
                             "| MRPC F1 | MRPC acc | SQuAD v2.0 EM | SQuAD v2.0 F1 | GLUE score | rank |")
    assert "mean over the GLUE tasks run (STS-B, SST-2, CoLA, MRPC)" in text
    assert "| 60.00 | 50.00 | 91.00 | 10.00 | 80.00 | 70.00 | 99.00 | 104.00 | 57.75 | 1 |" in text  # (55+91+10+75)/4
    assert "| SST-2 | x | 120 of 300 | 60.0% | 12.3% |" in text and "without any pretraining or task head" in text
    with open(tmp_path / "leaderboard.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert float(row["glue_score"]) == pytest.approx(57.75) and row["rank"] == "1" and row["model"] == "x"
    assert float(row["stsb_pearson"]) == 60.0 and row["parameters"] == "995"


def _write_page(tmp_path, models, tasks):
    (tmp_path / "perplexity.csv").write_text(
        ",".join(PERPLEXITY_ROWS[0]) + "\n" + "\n".join(",".join(str(v) for v in r.values()) for r in PERPLEXITY_ROWS))
    write_json(tmp_path / "tok.json", {"vocab_size": 300, "unk_rate": 0.001, "subwords_per_word": 1.25})
    return write_summary(out=str(tmp_path / "report.md"), perplexity_csv=str(tmp_path / "perplexity.csv"),
                         perplexity_png=str(tmp_path / "p.png"), tokenizer_report=str(tmp_path / "tok.json"),
                         param_reports={}, models=models, tasks=tasks,
                         leaderboard_csv=str(tmp_path / "leaderboard.csv"))


def test_seed_summary_carries_the_task_keys_and_training_speed(tmp_path):
    run = {"task": "cola", "model": "m", "model_dir": "d", "matthews_correlation": 20.0, "parameters": {},
           "task_metrics": ["matthews_correlation"], "task_label": "CoLA", "glue": True, "processes": 1,
           "train_features": 70, "settings": {"batch_size": 16},
           "epochs": [{"epoch": 1, "train_seconds": 2.0}, {"epoch": 2, "train_seconds": 6.0}]}
    write_json(tmp_path / "m.json", {**run, "seed": 1})
    summary = summarize_seeds([str(tmp_path / "m.json")], str(tmp_path / "s.json"))
    assert (summary["task_metrics"], summary["task_label"], summary["glue"]) == (["matthews_correlation"], "CoLA", True)
    assert summary["mean"]["train_examples_per_s"] == pytest.approx(64 * 2 / 8.0)  # 4 full batches of 16 per epoch
    del run["task_label"]
    write_json(tmp_path / "m.json", {**run, "seed": 1})
    with pytest.raises(DataError, match=r"m\.json.*task_label"):
        summarize_seeds([str(tmp_path / "m.json")], str(tmp_path / "s.json"))


def test_summary_page(tmp_path):
    results = tmp_path / "results"
    (results / "pretrain").mkdir(parents=True)
    (results / "pretrain" / "perplexity.csv").write_text(
        ",".join(PERPLEXITY_ROWS[0]) + "\n" + "\n".join(",".join(str(v) for v in r.values()) for r in PERPLEXITY_ROWS))
    write_json(results / "tok.json", {"vocab_size": 300, "unk_rate": 0.001, "subwords_per_word": 1.25,
                                      "validation_words": 900})
    write_json(results / "p.json", params(total=123456, folder_bytes=3 * 2**20))
    write_json(results / "base.json", params(vocab=30522, d=128, total=4_400_000, folder_bytes=17 * 2**20))
    write_json(results / "sst2.json", summary("sst2", "pretrained", {"accuracy": 81.0, "finetune_wall_time_s": 12}))
    write_json(results / "squad.json", summary("squad", "pretrained", {"exact_match": 11, "f1": 22.5}))
    write_json(results / "sst2b.json", summary("sst2", "bert-tiny", {"accuracy": 83.5, "finetune_wall_time_s": 9}))
    (results / "benchmark").mkdir()
    (results / "benchmark" / "inference.csv").write_text("model,seq_len,latency_ms\npretrained,16,1.23456\n")
    (results / "benchmark" / "latency_vs_seq_len.png").write_bytes(b"png")
    text = write_summary(
        out=str(results / "report.md"), perplexity_csv=str(results / "pretrain" / "perplexity.csv"),
        perplexity_png=str(results / "pretrain" / "perplexity.png"), tokenizer_report=str(results / "tok.json"),
        param_reports={"pretrained": (str(results / "p.json"), str(results / "reports" / "p.md"))},
        models={"pretrained": {"params": str(results / "p.json"), "sst2": str(results / "sst2.json"),
                               "squad": str(results / "squad.json")},
                "bert-tiny": {"params": str(results / "base.json"), "sst2": str(results / "sst2b.json")}},
        benchmark_csv=str(results / "benchmark" / "inference.csv"), card=str(results / "card" / "README.md"),
    )
    assert "| model | seq_len | download size | SST-2 acc | SQuAD v1.1 EM | SQuAD v1.1 F1 | GLUE score | rank |" in text
    assert "| bert-tiny | 512 | 17.0 MiB | 83.50 | n/a | n/a | 83.50 | 1 | 30,522 | 128 | 512 | 2 | 4,399,995 | 9 s |" in text
    assert ("| pretrained | 512 | 3.0 MiB | 81.00 | 11.00 | 22.50 | 81.00 | 2 | 300 | 64 | 256 | 2 | 123,451 | 12 s | n/a "
            "| n/a | n/a |") in text
    assert "No task ran with `reduce_vocab`" in text
    assert "![Validation perplexity per epoch](pretrain/perplexity.png)" in text
    assert "| 300 | 0.100% | 1.250 | 900 |" in text and "[pretrained](reports/p.md)" in text
    assert "| pretrained | 16 | 1.23 |" in text and "![latency vs seq len](benchmark/latency_vs_seq_len.png)" in text
    assert (results / "report.md").read_text() == text


def test_enabled_benchmark_without_a_rule_is_said(tmp_path):
    from bertflow.summary import benchmark_section

    assert "no rule of this workflow produces `x.csv`" in "\n".join(benchmark_section(None, "x.csv"))
    assert benchmark_section(None) == []


def test_summary_reports_mean_and_sample_std_over_seeds(tmp_path):
    files = []
    for seed, accuracy in ((1, 80.0), (2, 90.0), (3, 100.0)):
        files.append(str(tmp_path / f"seed{seed}.json"))
        write_json(files[-1], {"task": "sst2", "model": "m", "model_dir": "d", "seed": seed, "accuracy": accuracy,
                               "finetune_wall_time_s": 10.0 * seed, "parameters": {"finetuned_parameters": 7}})
    summary = summarize_seeds(files, str(tmp_path / "summary.json"))
    assert summary["seeds"] == [1, 2, 3]
    assert summary["mean"]["accuracy"] == pytest.approx(90.0)
    assert summary["std"]["accuracy"] == pytest.approx(10.0)  # sample standard deviation (ddof=1)
    assert summary["mean"]["finetune_wall_time_s"] == pytest.approx(20.0)
    assert summary["parameters"]["finetuned_parameters"] == 7
    assert json.loads((tmp_path / "summary.json").read_text())["mean"] == summary["mean"]


COMPARED = {"distilbert-base-cased", "distilbert-base-uncased", "bert-base-cased", "bert-base-uncased",
            "bert-large-cased", "bert-large-uncased", "distilroberta-base", "roberta-base", "roberta-large",
            "google/electra-small-discriminator", "google/electra-base-discriminator",
            "google/electra-large-discriminator", "microsoft/deberta-v3-small", "microsoft/deberta-v3-base",
            "microsoft/deberta-v3-large", "squeezebert/squeezebert-uncased", "xlm-roberta-base",
            "answerdotai/ModernBERT-base"}


def test_compare_config_plans_every_model_offline(tmp_path):
    """config/compare.yaml: the 18 Hub models next to ours, planned (downloads included) without network."""
    import yaml
    from support.workflow import REPO
    from test_finetune_rules import planned_jobs

    config = REPO / "config" / "compare.yaml"
    assert set(yaml.safe_load(config.read_text())["finetune"]["baselines"].values()) == COMPARED
    jobs = planned_jobs(tmp_path, config)
    assert jobs["download_model"] == 18 and jobs["download_task_data"] == 2 and jobs["params_report"] == 19
    assert jobs["finetune"] == jobs["finetune_summary"] == 2 * 19 and jobs["summary_report"] == 1


def test_html_page_links_to_local_files_hold_from_the_page_folder(tmp_path):
    from bertflow.html_page import write_markdown_page

    (tmp_path / "leaderboard.csv").write_text("model\n")
    (tmp_path / "report.md").write_text("[CSV](leaderboard.csv), [gone](missing.csv), [web](https://x.org/a)\n")
    write_markdown_page(str(tmp_path / "report.md"), str(tmp_path / "html" / "report.html"), "Summary")
    page = (tmp_path / "html" / "report.html").read_text()
    assert 'href="../leaderboard.csv"' in page and 'href="missing.csv"' in page and 'href="https://x.org/a"' in page
