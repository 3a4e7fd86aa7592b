"""A pretraining process killed mid-epoch (SIGTERM, as SLURM sends) resumes to the same model,
and a time-budgeted one gets only what is left of its budget."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from support.pretrain import tokenized_corpus
from support.stages import sigterm_after, start_stage


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tokenizer and blocks (block-file format) from the generated corpus."""
    return tokenized_corpus(tmp_path_factory.mktemp("data"))


def spec(data, out, **train):
    # No seq_len, as the workflow passes none: it comes with the blocks (32 tokens here).
    settings = {"preset": "tiny", "model": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128},
                "epochs": 2, "batch_size": 8, "learning_rate": 2e-3, "log_every_steps": 1, **train}
    return {
        "tokenizer_dir": str(data / "tokenizer"),
        "blocks_dir": str(data / "blocks"),
        "outputs": {k: str(out / name) for k, name in
                    (("model", "model"), ("perplexity", "ppl.csv"), ("plot", "ppl.png"), ("info", "info.json"))},
        "train": settings, "device": "cpu", "seed": 5, "checkpoint_dir": str(out / "checkpoints"),
    }


def start(spec_dict, path):
    return start_stage("bertflow.pretrain", spec_dict, path)


def test_sigterm_mid_epoch_checkpoints_and_resume_matches_uninterrupted(data, tmp_path):
    reference_out, resumed_out = tmp_path / "reference", tmp_path / "resumed"
    assert start(spec(data, reference_out), tmp_path / "a.json").wait(timeout=600) == 0

    sigterm_after(start(spec(data, resumed_out), tmp_path / "b.json"), "epoch 1 step 5/")  # a few steps in
    checkpoint = torch.load(resumed_out / "checkpoints/last.pt", weights_only=True)
    stopped_at = checkpoint["progress"]["global_step"]
    assert 5 <= stopped_at and checkpoint["progress"]["epoch"] == 0, "expected a mid-epoch checkpoint"
    assert not (resumed_out / "model").exists()

    resumed = start(spec(data, resumed_out), tmp_path / "b.json")
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    assert f"resumed from {resumed_out / 'checkpoints/last.pt'}: epoch 1, step {stopped_at}" in log

    info_ref = json.loads((reference_out / "info.json").read_text())
    info_res = json.loads((resumed_out / "info.json").read_text())
    assert info_res["steps"] == info_ref["steps"]
    assert info_res["settings"]["seq_len"] == info_res["blocks"]["seq_len"] == 32, "the block length, from the blocks"
    weights_ref = load_file(reference_out / "model/model.safetensors")
    weights_res = load_file(resumed_out / "model/model.safetensors")
    for name, tensor in weights_ref.items():  # same thread count: bit for bit
        assert torch.equal(weights_res[name], tensor), name
    rows_ref = list(csv.DictReader(open(reference_out / "ppl.csv")))
    rows_res = list(csv.DictReader(open(resumed_out / "ppl.csv")))
    for key in ("epoch", "step", "train_loss", "eval_loss", "perplexity", "kind"):
        assert [r[key] for r in rows_res] == [r[key] for r in rows_ref], key
    assert not (resumed_out / "checkpoints").exists(), "a finished run removes its checkpoint"


def test_a_seq_len_other_than_the_blocks_is_refused_before_training(data, tmp_path):
    from bertflow.errors import DataError
    from bertflow.pretrain import pretrain

    with pytest.raises(DataError, match="holds blocks of 32 tokens but pretrain.seq_len is 64"):
        pretrain(**spec(data, tmp_path / "out", seq_len=64))
    assert not (tmp_path / "out").exists()


def test_checkpoint_from_other_settings_is_not_resumed(data, tmp_path):
    out = tmp_path / "out"
    sigterm_after(start(spec(data, out), tmp_path / "a.json"), "epoch 1 step 3/")
    other = start(spec(data, out, learning_rate=1e-3, epochs=1), tmp_path / "c.json")
    log = other.communicate(timeout=600)[0]
    assert other.returncode == 0, log
    assert "made with other settings or data" in log and "resumed from" not in log
    kept = list((out / "stale-checkpoints").iterdir())
    assert len(kept) == 1 and str(kept[0]) in log, "the set-aside checkpoint survives the finished run"
    assert not (out / "checkpoints").exists()


def test_time_budget_run_killed_and_resumed_uses_what_is_left_of_the_budget(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, budget_s = tmp_path / "budget", 0.15 * 60
    budgeted = spec(data, out, time_budget=0.15, warmup_ratio=0.1)
    sigterm_after(start(budgeted, tmp_path / "a.json"), "epoch 1 step 20 ")
    spent = torch.load(out / "checkpoints/last.pt", weights_only=True)["progress"]["train_s"]
    assert 0 < spent < budget_s

    resumed = start(budgeted, tmp_path / "a.json")
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    assert "of the 0.15-minute budget left" in log and "resumed from" in log
    info = json.loads((out / "info.json").read_text())
    assert info["stopped_by"] == "time_budget"
    assert budget_s <= info["train_time_s"] < budget_s + 3, "the resumed run trained only for what was left"
    rows = list(csv.DictReader(open(out / "ppl.csv")))
    assert rows[-1]["kind"] in ("end", "epoch") and int(rows[-1]["step"]) == info["steps"]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    lrs = events.Scalars("pretrain/lr")
    assert lrs[-1].step == info["steps"] and lrs[-1].value < 0.03 * 2e-3, "the schedule ends where training ends"
    assert max(e.value for e in lrs) > 0.5 * 2e-3
