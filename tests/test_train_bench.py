"""Training-speed harness: FLOP counting, lever plan, comparison verdicts, and a tiny end-to-end run.

No timing is asserted (speed figures belong in docs/performance.md, with their command)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from benchmarks import train_bench
from bertflow.presets import architecture

os.environ.setdefault("OMP_NUM_THREADS", "1")


def tiny_config(vocab_size=1000):
    return BertConfig(vocab_size=vocab_size, **architecture("tiny"))  # 2 layers, hidden 128, ffn 512


def test_flops_per_token_matches_a_hand_count():
    # h=128, 2 layers, i=512, V=1000, L=64.
    # encoder 2 x (4*128^2 + 2*128*512) = 393,216; head 128^2 + 128*1000 = 144,384;
    # attention 2 layers x 2 x 64 x 128 = 32,768 multiply-adds per token; x2 FLOPs x3 (fwd + bwd).
    config = tiny_config()
    assert train_bench.flops_per_token(config, 64, 1.0) == 6 * (393_216 + 144_384 + 32_768)
    # Our head runs on round(64 * 0.15) = 10 of 64 positions.
    share = train_bench.masked_fraction(64, 0.15)
    assert share == 10 / 64
    assert train_bench.flops_per_token(config, 64, share) == pytest.approx(6 * (393_216 + 144_384 * 10 / 64 + 32_768))


def test_6n_part_is_the_models_matmul_weights():
    """The N in 6N is every nn.Linear weight a token passes: encoder plus MLM head (vocabulary projection)."""
    config = tiny_config(vocab_size=777)
    model = BertForMaskedLM(config)
    linear = sum(m.weight.numel() for part in (model.bert.encoder, model.cls) for m in part.modules()
                 if isinstance(m, torch.nn.Linear))
    attention_only = train_bench.flops_per_token(config, 32, 0.0) - 6 * (linear - 128 * 128 - 128 * 777)
    assert attention_only == pytest.approx(12 * config.num_hidden_layers * 32 * config.hidden_size)
    assert train_bench.flops_per_token(config, 32, 1.0) == pytest.approx(6 * linear + 12 * 2 * 32 * 128)


def test_levers_flip_each_stage_default_once():
    cpu, cuda = train_bench.levers("cpu"), train_bench.levers("cuda")
    assert "fp32/TF32 (no bf16 autocast)" in cuda and not any("bf16" in k for k in cpu)  # autocast: GPU lever only
    assert cpu["+ torch.compile"] == {"compile": True} and cuda["no torch.compile"] == {"compile": False}
    assert cpu["+ fused AdamW"] == {"fused_adamw": True} and cuda["unfused AdamW"] == {"fused_adamw": False}
    for device, flips in (("cpu", cpu), ("cuda", cuda)):
        defaults = train_bench.ours_defaults(device)
        for change in flips.values():
            assert len(change) == 1
            key, value = next(iter(change.items()))
            assert key == "precision" or defaults[key] != value
    runs = train_bench.plan(["tiny", "mini"], [64], "cpu", baseline=True, with_levers=False)
    assert [(r.preset, r.kind) for r in runs] == [("tiny", "baseline"), ("tiny", "ours"), ("mini", "baseline"), ("mini", "ours")]


def test_dropout_and_thread_levers_are_config_overrides_and_can_be_chosen():
    cpu = train_bench.levers("cpu", threads=1)
    assert cpu["attention dropout 0"] == {"model_overrides": {"attention_probs_dropout_prob": 0.0}}
    assert cpu["no dropout (hidden + attention 0)"]["model_overrides"] == {
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    assert cpu["2 torch threads"] == {"threads": 2} and train_bench.levers("cpu", threads=2)["1 torch thread"] == {"threads": 1}
    assert not any("thread" in label for label in train_bench.levers("cuda"))
    # The overrides are pretrain.model keys: the stage accepts them as they are.
    from bertflow.pretrain import Settings, build_model
    for change in (cpu["no dropout (hidden + attention 0)"], cpu["attention dropout 0"]):
        model = build_model(Settings.from_config({"model": change["model_overrides"]}), vocab_size=100, pad_token_id=0)
        assert model.config.attention_probs_dropout_prob == 0.0
    runs = train_bench.plan(["tiny"], [64], "cpu", baseline=False, with_levers=True, only=["DROPOUT", "thread"])
    assert [r.name for r in runs] == [train_bench.OURS, "attention dropout 0", "no dropout (hidden + attention 0)",
                                      "2 torch threads"]


def test_loss_curve_averages_consecutive_windows_of_every_step():
    assert train_bench.loss_curve([6.0, 4.0, 3.0, 1.0, 2.0], points=2) == [5.0, 2.0]
    assert train_bench.loss_curve([1.0, 2.0], points=10) == [1.0, 2.0]


def row(run, tokens_per_s, final_loss, peak=2**30, before=2**29):
    return {"preset": "tiny", "seq_len": 64, "run": run, "tokens_per_s": tokens_per_s, "final_loss": final_loss,
            "flops_per_token": 1e6,
            "peak_memory_bytes": peak, "rss_before_bytes": before, "device": "cpu"}


def test_compare_reports_speedup_memory_and_loss_verdict():
    rows = [row(train_bench.BASELINE, 1000.0, 5.0, peak=3 * 2**29), row(train_bench.OURS, 2500.0, 5.1)]
    (result,) = train_bench.compare(rows, tolerance=0.03)
    assert result["speedup"] == pytest.approx(2.5)
    assert result["memory_ratio"] == pytest.approx(0.5)  # CPU: RSS growth 0.5 GiB vs 1 GiB
    assert result["relative_final_loss_gap"] == pytest.approx(0.02) and result["loss_within_tolerance"]
    diverged = [rows[0], row(train_bench.OURS, 2500.0, 5.5)]
    (result,) = train_bench.compare(diverged, tolerance=0.03)
    assert not result["loss_within_tolerance"]
    report = train_bench.format_report([{**r, "mfu": 0.1} for r in diverged], [result], 0.03, {"fp32": (1e12, "test")})
    assert "OUTSIDE the 3% tolerance" in report and "2.50x tokens/s" in report


def test_rounds_report_medians_and_per_round_pair_ratios():
    """Never the best of each side: a lucky fast round of ours must not make the speedup."""
    measured = [{**row(train_bench.OURS, 900.0, 5.0), "round": 0}, {**row(train_bench.BASELINE, 450.0, 5.0), "round": 0},
                {**row(train_bench.BASELINE, 300.0, 5.0), "round": 1}, {**row(train_bench.OURS, 3000.0, 5.2), "round": 1},
                {**row(train_bench.OURS, 1000.0, 5.1), "round": 2}, {**row(train_bench.BASELINE, 400.0, 5.0), "round": 2}]
    rows = {r["run"]: r for r in train_bench.median_rows(measured)}
    assert rows[train_bench.OURS]["tokens_per_s"] == 1000.0 and rows[train_bench.OURS]["final_loss"] == 5.1
    assert rows[train_bench.OURS]["tokens_per_s_repeats"] == [900.0, 3000.0, 1000.0]
    (result,) = train_bench.compare(list(rows.values()), 0.03, measured)
    assert result["speedup_pairs"] == [2.0, 10.0, 2.5]
    assert (result["speedup"], result["speedup_min"], result["speedup_max"]) == (2.5, 2.0, 10.0)
    # The best of each side would claim 3000 / 450 = 6.7x.


def test_synthetic_tokenizer_has_the_requested_vocabulary():
    tokenizer = train_bench.synthetic_tokenizer(1000)
    assert len(tokenizer) == 1000
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id) == (0, 4)
    assert tokenizer("w7 w994 zz")["input_ids"] == [2, 12, 999, 1, 3]


def test_bad_arguments_fail_before_any_compute(tmp_path, capsys):
    with pytest.raises(train_bench.ConfigError, match="--data text needs"):
        train_bench.parse_args(["--data", "text"])
    with pytest.raises(train_bench.ConfigError, match="--steps"):
        train_bench.parse_args(["--steps", "0"])
    assert train_bench.main(["--data", "blocks", "--blocks", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path}: no blocks_meta.json" in capsys.readouterr().err


def test_tiny_run_on_generated_text_writes_both_loops(tmp_path, capsys):
    """Baseline and ours on blocks packed from the offline corpus (no `datasets`), 3 timed steps each."""
    out = tmp_path / "bench"
    code = train_bench.main(["--presets", "tiny", "--seq-lens", "32", "--batch-size", "4", "--steps", "3",
                             "--warmup-steps", "1", "--data", "generated", "--sentences", "400", "--vocab-size", "200",
                             "--no-levers", "--in-process", "--repeats", "1", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "train_bench.json").read_text())
    runs = {r["run"]: r for r in result["rows"]}
    assert set(runs) == {train_bench.BASELINE, train_bench.OURS}
    peak = result["peaks"]["fp32"][0]  # CPU: the best matmul rate measured during the run
    for r in runs.values():
        assert r["tokens_per_s"] > 0 and r["peak_memory_bytes"] > 0
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * r["flops_per_token"] / peak)
        # Both start from the same random weights: the first loss is about ln(vocabulary size).
        assert 0.7 * math.log(200) < r["first_loss"] < 1.3 * math.log(260)
    assert runs[train_bench.BASELINE]["head_share"] == 1.0 and runs[train_bench.OURS]["head_share"] == 5 / 32
    assert json.loads(runs[train_bench.BASELINE]["settings"])["attention"] == "sdpa"  # transformers 5's default
    (comparison,) = result["comparisons"]
    assert comparison["speedup"] > 0 and "loss_within_tolerance" in comparison
    assert "ours / baseline" in capsys.readouterr().out
    assert (out / "train_bench.csv").read_text().count("\n") == 3


@pytest.mark.parametrize("masked_only_head, fused_adamw", [(True, None), (False, True)])
def test_head_and_optimizer_levers_reach_the_stages_loop(masked_only_head, fused_adamw):
    """The two levers the stage's settings do not carry: the benchmark's Pretrainer variant applies them."""
    from bertflow.pretrain import Settings, Vocab

    settings = Settings.from_config(dict(preset="tiny", seq_len=16, max_steps=1, batch_size=4, max_eval_blocks=1,
                                         compile=False, tensorboard=False))
    cls = train_bench.lever_pretrainer(masked_only_head, fused_adamw)
    blocks = train_bench.random_blocks(8, 16, 100, seed=0)
    trainer = cls(settings, vocab=Vocab(100, 0, 4, (0, 1, 2, 3, 4)), blocks={"train": blocks, "validation": blocks[:1]},
                  meta={}, device="cpu", checkpoint_dir=os.devnull)
    assert trainer.objective.masked_only_head is masked_only_head
    assert trainer.optimizer.optimizer.defaults["fused"] is bool(fused_adamw)  # None: fused on CUDA only


def test_isolated_run_reports_its_own_process_memory(tmp_path):
    """The default mode: each run in a fresh process; on CPU peak RSS and the RSS before the model."""
    blocks = train_bench.random_blocks(8, 16, 100, seed=0)
    torch.save(blocks, tmp_path / "blocks.pt")
    common = train_bench.Common(steps=2, batch_size=4, learning_rate=1e-3, seed=0, device="cpu", precision="fp32",
                                mlm_probability=0.15, warmup_steps=1, vocab_size=100, max_position_embeddings=64,
                                tokenizer_dir=None)
    run = train_bench.Run(train_bench.OURS, "ours", "tiny", 16)
    result = train_bench.execute_isolated(run, str(tmp_path / "blocks.pt"), common, str(tmp_path))
    assert len(result["losses"]) == 2 and result["settings"]["masked_only_head"] is True  # the stage's head
    assert result["peak_memory_bytes"] >= result["rss_before_bytes"] > 0


def test_held_out_blocks_give_every_run_the_same_masked_loss(tmp_path):
    """--eval-blocks: the last blocks are not trained on; the loss on them uses fixed masks and no
    dropout, so an untrained model scores the same on both sides and a lever's own thread count
    is used for its run only."""
    blocks = train_bench.random_blocks(12, 16, 100, seed=0)
    common = train_bench.Common(steps=1, batch_size=4, learning_rate=1e-9, seed=0, device="cpu", precision="fp32",
                                mlm_probability=0.15, warmup_steps=1, vocab_size=100, max_position_embeddings=64,
                                tokenizer_dir=None, eval_blocks=4)
    ours = train_bench.execute(train_bench.Run(train_bench.OURS, "ours", "tiny", 16), blocks, common)
    lever = train_bench.execute(train_bench.Run("2 torch threads", "ours", "tiny", 16, {"threads": 2}), blocks, common)
    base = train_bench.execute(train_bench.Run(train_bench.BASELINE, "baseline", "tiny", 16), blocks, common)
    assert lever["settings"]["threads"] == 2 and ours["settings"]["threads"] == 1 and torch.get_num_threads() == 1
    # lr 1e-9: the weights barely move, so the held-out losses agree (same initial weights, same masks).
    assert ours["eval_loss"] == pytest.approx(base["eval_loss"], rel=1e-4)
    assert ours["eval_loss"] == pytest.approx(lever["eval_loss"], rel=1e-4)
    assert 0.7 * math.log(100) < ours["eval_loss"] < 1.3 * math.log(100)



def test_held_out_blocks_must_leave_a_training_batch(tmp_path, monkeypatch):
    """A text too short for the training batches plus the held-out blocks fails before any training."""
    monkeypatch.setattr(train_bench, "load_data", lambda args, seq_len, n, workdir: (torch.zeros(10, 16), None, 100))
    args = train_bench.parse_args(["--batch-size", "4", "--eval-blocks", "8", "--seq-lens", "16"])
    with pytest.raises(train_bench.DataError, match="leave fewer than one batch of 4 after the 8 held out"):
        train_bench.prepare_data(args, 16, str(tmp_path))
    blocks, *_ = train_bench.prepare_data(train_bench.parse_args(["--batch-size", "2", "--eval-blocks", "8"]), 16,
                                          str(tmp_path))
    assert len(blocks) == 10
