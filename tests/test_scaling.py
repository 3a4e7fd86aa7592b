"""Per-stage wall-time split from Snakemake benchmark files (python -m benchmarks.scaling)."""

from __future__ import annotations

import json

import pytest

from benchmarks import scaling
from bertflow.errors import DataError

from support.workflow import REPO

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench_file(folder, name, *repeats):
    """A benchmark TSV as Snakemake writes it: one line per repeat (seconds, max RSS MB, CPU seconds)."""
    lines = [f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n" for s, rss, cpu in repeats]
    (folder / f"{name}.tsv").write_text(HEADER + "".join(lines))


def test_jobs_are_grouped_by_their_rules_bench_pattern(tmp_path):
    bench_file(tmp_path, "pretrain", (60.0, 500, 50.0), (40.0, 700, 30.0))  # two repeats: mean 50 s
    bench_file(tmp_path, "finetune_sst2_pretrained_seed1", (20.0, 400, 15.0))
    bench_file(tmp_path, "finetune_squad_pretrained_seed2", (10.0, 450, 8.0))
    bench_file(tmp_path, "params_report_sst2_pretrained", (5.0, 300, 4.0))
    bench_file(tmp_path, "params_report_pretrained", (5.0, 310, 4.0))
    bench_file(tmp_path, "my_extra_rule", (10.0, 100, 1.0))
    rows = {r["stage"]: r for r in scaling.stage_split(str(tmp_path), REPO / "rules")}
    assert rows["pretrain"]["wall_s"] == 50.0 and rows["pretrain"]["cpu_s"] == 40.0
    assert rows["pretrain"]["max_rss_mb"] == 600.0
    finetune = rows["finetune_{task}_{model}_seed{seed}"]
    assert finetune["jobs"] == 2 and finetune["wall_s"] == 30.0 and finetune["max_rss_mb"] == 450.0
    assert rows["params_report_{task}_{model}"]["jobs"] == 1 and rows["params_report_{model}"]["jobs"] == 1
    assert rows["my_extra_rule"]["jobs"] == 1  # unknown to the rules: its own stage
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    assert rows["pretrain"]["share"] == pytest.approx(50 / 100)
    assert list(rows)[0] == "pretrain"  # largest first


def test_cli_prints_the_split_and_writes_json(tmp_path, capsys):
    bench_file(tmp_path, "train_tokenizer", (3.0, 200, 2.5))
    assert scaling.main([str(tmp_path), "--rules", str(REPO / "rules"), "--json", str(tmp_path / "split.json")]) == 0
    out = capsys.readouterr().out
    assert "train_tokenizer" in out and "100.0%" in out
    assert json.loads((tmp_path / "split.json").read_text())["stages"][0]["wall_s"] == 3.0


def test_cli_outside_a_checkout_says_jobs_are_not_grouped(tmp_path, capsys, monkeypatch):
    bench_file(tmp_path, "finetune_sst2_pretrained_seed1", (2.0, 200, 1.5))
    monkeypatch.chdir(tmp_path)  # no rules/ here
    assert scaling.main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "no rules folder" in captured.err and "finetune_sst2_pretrained_seed1" in captured.out


def test_missing_or_malformed_benchmarks_are_named(tmp_path, capsys):
    assert scaling.main([str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    (tmp_path / "broken.tsv").write_text("not\ta benchmark\n")
    with pytest.raises(DataError, match="broken.tsv: not a Snakemake benchmark file"):
        scaling.stage_split(str(tmp_path), None)
