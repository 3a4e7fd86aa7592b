"""The inference benchmark: its grid, its measurements and its outputs (no timing assertions)."""

from __future__ import annotations

import csv

import torch
from transformers import BertConfig, BertForMaskedLM

from bertflow.inference import COLUMNS, benchmark_models, grid, latency_quantiles, measure_model, plain_log_ticks


def tiny_model(path, max_positions=32):
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=max_positions)).save_pretrained(path)
    return str(path)


def test_grid_has_both_sweeps():
    assert grid([8, 16], [1, 4], fixed_batch=2, fixed_seq_len=16) == [
        ("seq_len", 2, 8), ("seq_len", 2, 16), ("batch_size", 1, 16), ("batch_size", 4, 16)]


def test_measure_model_skips_lengths_beyond_positions_and_reports_memory(tmp_path):
    rows = measure_model(tiny_model(tmp_path / "m"), grid([8, 64], [1], 2, 8), warmup=1, repeats=3, device="cpu")
    assert [(r["sweep"], r["batch_size"], r["seq_len"]) for r in rows] == [("batch_size", 1, 8), ("seq_len", 2, 8)]
    for row in rows:
        assert 0 < row["latency_ms_p10"] <= row["latency_ms_median"] <= row["latency_ms_p90"]
        assert row["memory_kind"] == "cpu_peak_rss_growth" and row["peak_memory_mb"] >= 0
        assert row["device"] == "cpu" and row["torch"] == torch.__version__


def test_stage_writes_csv_and_three_plots(tmp_path):
    plots = {k: str(tmp_path / f"{k}.png") for k in ("latency_vs_seq_len", "memory_vs_seq_len", "memory_vs_batch_size")}
    benchmark_models(models={"a": tiny_model(tmp_path / "a")}, out_csv=str(tmp_path / "b.csv"),
                     out_json=str(tmp_path / "b.json"), plots=plots, seq_lens=[8, 16], batch_sizes=[1, 2],
                     fixed_batch=2, fixed_seq_len=8, warmup=1, repeats=2, device="cpu")
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert list(rows[0]) == COLUMNS and len(rows) == 4 and {r["model"] for r in rows} == {"a"}
    assert all((tmp_path / f"{k}.png").stat().st_size > 1000 for k in plots)


def test_latency_quantiles():
    times = [float(t) for t in range(1, 12)]  # 1..11: p10 2, median 6, p90 10
    assert latency_quantiles(times) == (2.0, 6.0, 10.0)
    assert latency_quantiles([0.5]) == (0.5, 0.5, 0.5)


def test_log_axis_ticks_are_plain_numbers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([32, 128, 512], [1, 2, 3])
    ax.set_xscale("log", base=2)
    plain_log_ticks(ax.xaxis, [32, 128, 512])
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "128", "512"]
    plt.close(fig)


def test_every_model_gets_its_own_memory_figure_and_the_json_records_the_device(tmp_path):
    """Peak RSS never goes down within a process: models after the first would read ~0 MB without
    a process of their own (docs/results/cpu-stage-overhead/inference_isolation.txt)."""
    import json

    plots = {k: str(tmp_path / f"{k}.png") for k in ("latency_vs_seq_len", "memory_vs_seq_len", "memory_vs_batch_size")}
    models = {name: tiny_model(tmp_path / name) for name in ("a", "b")}
    rows = benchmark_models(models=models, out_csv=str(tmp_path / "b.csv"), out_json=str(tmp_path / "b.json"),
                            plots=plots, seq_lens=[32, 64], batch_sizes=[8, 16], fixed_batch=16, fixed_seq_len=32,
                            warmup=1, repeats=1, device="cpu")
    for name in models:  # a 16 x 64 batch needs well over 1 MB of activations
        assert max(r["peak_memory_mb"] for r in rows if r["model"] == name) > 1
    device = json.loads((tmp_path / "b.json").read_text())["environment"]["device"]
    assert device["cuda_available"] is False and device["cpu_threads"] >= 1


def test_latency_monotonicity_benchmark_reports_every_repeat_count(capsys):
    """benchmarks.latency_monotonicity runs the stage's `run_model` for each head and repeat count."""
    from benchmarks.latency_monotonicity import main

    main(["--preset", "tiny", "--vocab-size", "100", "--seq-lens", "8", "16", "--batch", "2", "--repeats", "1", "2",
          "--warmup", "1", "--trials", "1"])
    out = capsys.readouterr().out
    assert out.count("trial 0 repeats") == 6  # 3 models x 2 repeat counts
    for repeats in (1, 2):
        assert f"repeats {repeats}: monotone in " in out and "/1 trials (all 3 models)" in out
