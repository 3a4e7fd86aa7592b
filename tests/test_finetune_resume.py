"""A fine-tuning run stopped by a signal (SLURM's time limit, a deadline under `timeout`) checkpoints
and resumes to the weights and metrics of a run never stopped; a checkpoint of another run is set
aside, never resumed."""

from __future__ import annotations

import contextlib
import shutil

import pytest
import torch
from safetensors.torch import load_file

from bertflow import finetune as ft
from bertflow.checkpoints import StopRequested
from bertflow.io import read_json

from support.finetune import generated_task_files, make_tiny_model
from support.stages import sigterm_after, start_stage

SETTINGS = {"epochs": 3, "batch_size": 16, "learning_rate": 1e-3, "max_length": 64, "doc_stride": 16}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Dropout on (BertConfig's 0.1): a resume must restore the random stream as well as the weights."""
    return make_tiny_model(tmp_path_factory.mktemp("model"), vocab_size=300, hidden=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generated_task_files(tmp_path_factory.mktemp("data"))


def spec(task, model_dir, data, out, **settings) -> dict:
    ext = "tsv" if task == "sst2" else "json"
    return {"task": task, "model_dir": str(model_dir), "train_file": str(data / f"train.{ext}"),
            "validation_file": str(data / f"validation.{ext}"), "out_dir": str(out), "seed": 7, "device": "cpu",
            "settings": {**SETTINGS, **settings}, "checkpoint_dir": str(out / "checkpoints")}


class StopAfter(dict):
    """A stop flag that turns on at its `n`-th check (one per step but an epoch's last, one after
    each evaluated epoch but the last)."""

    def __init__(self, n: int):
        super().__init__(stop=False)
        self.left = n

    def __getitem__(self, key):
        self.left -= 1
        return self.left <= 0


def run_stopped_after(monkeypatch, checks: int, **run_spec) -> dict:
    """Run until the stop flag's `checks`-th check; the checkpoint's progress record."""
    monkeypatch.setattr(ft, "stop_on_signals", lambda: contextlib.nullcontext(StopAfter(checks)))
    with pytest.raises(StopRequested, match="stopped"):
        ft.finetune(**run_spec)
    assert not (ft.Path(run_spec["out_dir"]) / "metrics.json").exists(), "no output before the run ends"
    return torch.load(ft.Path(run_spec["checkpoint_dir"]) / "last.pt", weights_only=True)["progress"]


@pytest.mark.parametrize("task, metric", [("sst2", "accuracy"), ("squad", "exact_match")])
def test_a_run_stopped_twice_ends_as_the_run_never_stopped(task, metric, model_dir, data, tmp_path, monkeypatch):
    reference = ft.finetune(**{**spec(task, model_dir, data, tmp_path / "reference"), "checkpoint_dir": None})
    steps = reference["train_features"] // SETTINGS["batch_size"]
    assert steps >= 4, "the test needs a stop in the middle of an epoch"
    cut = spec(task, model_dir, data, tmp_path / "cut")

    mid_epoch = run_stopped_after(monkeypatch, 3, **cut)
    assert (mid_epoch["epoch"], mid_epoch["step_in_epoch"]) == (0, 3) and mid_epoch["rows"] == []
    # Resumed at step 3: the checks of steps 4 .. steps-1, then the one after epoch 1's evaluation.
    epoch_end = run_stopped_after(monkeypatch, steps - 3, **cut)
    assert (epoch_end["epoch"], epoch_end["step_in_epoch"]) == (1, 0) and len(epoch_end["rows"]) == 1
    assert epoch_end["earlier_wall_s"] > mid_epoch["earlier_wall_s"] > 0

    monkeypatch.setattr(ft, "stop_on_signals", lambda: contextlib.nullcontext({"stop": False}))
    resumed = ft.finetune(**cut)
    assert resumed["resumed"] is True and reference["resumed"] is False
    assert resumed[metric] == reference[metric]
    for ours, theirs in zip(resumed["epochs"], reference["epochs"], strict=True):
        assert ours["train_loss"] == theirs["train_loss"]  # float64 sums: exact wherever the run was cut
        assert ours[metric] == theirs[metric]
    weights, expected = load_file(tmp_path / "cut/model/model.safetensors"), load_file(
        tmp_path / "reference/model/model.safetensors")
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():  # the same thread count: bit for bit
        assert torch.equal(weights[name], tensor), name
    assert read_json(tmp_path / "cut/predictions.json") == read_json(tmp_path / "reference/predictions.json")
    assert resumed["finetune_wall_time_s"] > epoch_end["earlier_wall_s"], "the attempts' time is counted"
    assert not (tmp_path / "cut/checkpoints").exists(), "a finished run removes its checkpoint"


def test_a_checkpoint_of_other_settings_is_set_aside_and_the_run_starts_fresh(model_dir, data, tmp_path, monkeypatch):
    run_stopped_after(monkeypatch, 2, **spec("sst2", model_dir, data, tmp_path))
    monkeypatch.setattr(ft, "stop_on_signals", lambda: contextlib.nullcontext({"stop": False}))
    result = ft.finetune(**spec("sst2", model_dir, data, tmp_path, learning_rate=2e-3))
    assert result["resumed"] is False and len(result["epochs"]) == SETTINGS["epochs"]
    kept = list((tmp_path / "stale-checkpoints").iterdir())
    assert len(kept) == 1 and torch.load(kept[0], weights_only=True)["progress"]["step_in_epoch"] == 2


def test_the_fingerprint_follows_the_pretrained_weights_not_other_files(model_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    (other / "README.md").write_text("a card changes no weight")
    assert ft.model_digest(str(other)) == ft.model_digest(model_dir)
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    from safetensors.torch import save_file

    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    assert ft.model_digest(str(other)) != ft.model_digest(model_dir)


def test_sigterm_checkpoints_exits_143_and_the_rerun_resumes(model_dir, data, tmp_path):
    """The stage's own entry point, as the workflow and the sweeps start it: SIGTERM after epoch 1."""
    run_spec, spec_file = spec("sst2", model_dir, data, tmp_path / "out", epochs=20), tmp_path / "spec.json"
    rest = sigterm_after(start_stage("bertflow.finetune", run_spec, spec_file), "sst2 epoch 1:")
    assert "checkpointing at the next step boundary" in rest and "StopRequested" not in rest, rest
    stopped = torch.load(tmp_path / "out/checkpoints/last.pt", weights_only=True)["progress"]
    assert 1 <= stopped["epoch"] < 20

    rerun = start_stage("bertflow.finetune", run_spec, spec_file)
    log = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, log[-3000:]
    assert f"resumed from {tmp_path / 'out/checkpoints/last.pt'}: epoch {stopped['epoch'] + 1}" in log
    metrics = read_json(tmp_path / "out/metrics.json")
    assert [row["epoch"] for row in metrics["epochs"]] == list(range(1, 21)) and metrics["resumed"] is True


@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_the_features_key_is_the_same_before_and_after_the_features_are_built(task, model_dir, data):
    """Encoding leaves truncation and padding state on the tokenizer: a key taken after a run that
    built its features must still match the one taken by a run that read them from the cache."""
    settings = ft.FinetuneSettings.from_config({**SETTINGS, "max_length": 64}, f"finetune.{task}")
    _, tokenizer, _ = ft.load_task_model("qa" if task == "squad" else "classification", model_dir,
                                         settings.max_length, labels=["negative", "positive"])
    ext = "tsv" if task == "sst2" else "json"
    task_data = ft.TASKS[task](tokenizer, settings, str(data / f"train.{ext}"), str(data / f"validation.{ext}"))
    before = ft.features_key(task_data)
    task_data.build_features()
    assert ft.features_key(task_data) == before
