"""Summary report: leaderboard ranking and columns, sections, benchmark table."""

from __future__ import annotations

import json

import pytest
from support.report import PERPLEXITY_ROWS, summary

from bertflow.io import write_json
from bertflow.summary import leaderboard_rows, summarize_seeds, write_summary


def params(vocab=300, d=64, total=1000, folder_bytes=2048):
    return {"architecture": "BertForMaskedLM", "vocab_size": vocab, "d_model": d, "d_ff": 4 * d, "layers": 2,
            "max_positions": 512, "parameters": {"total": total, "embeddings": 10, "per_layer": 20, "head": 5},
            "word_embeddings": {"params": vocab * d, "bytes": {"fp32": vocab * d * 4, "fp16": vocab * d * 2}},
            "files": {"folder_bytes": folder_bytes}}


def entry(accuracy=None, squad=None, **kw):
    out = {"params": params(**kw)}
    if accuracy is not None:
        out["sst2"] = summary("sst2", "m", {"accuracy": accuracy, "finetune_wall_time_s": 10.0})
    if squad is not None:
        out["squad"] = summary("squad", "m", {"exact_match": squad[0], "f1": squad[1], "finetune_wall_time_s": 5.0})
    return out


def test_leaderboard_ranks_by_sst2_accuracy_with_ties_and_missing():
    rows = leaderboard_rows({"a": entry(80.0, (10, 20)), "b": entry(90.0), "c": entry(80.0), "d": entry()})
    assert [(r["model"], r["rank"]) for r in rows] == [("b", 1), ("a", 2), ("c", 2), ("d", None)]
    a = rows[1]
    assert a["finetune_wall_time_s"] == 15.0 and (a["squad_exact_match"], a["squad_f1"]) == (10, 20)
    assert rows[0]["squad_f1"] is None and rows[3]["finetune_wall_time_s"] is None


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
    assert "| bert-tiny | 512 | 17.0 MiB | 83.50 | 1 | 30,522 | 128 | 512 | 2 | 4,400,000 | 9 s | n/a / n/a |" in text
    assert "| pretrained | 512 | 3.0 MiB | 81.00 | 2 | 300 | 64 | 256 | 2 | 123,456 | 12 s | 11.00 / 22.50 |" in text
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
