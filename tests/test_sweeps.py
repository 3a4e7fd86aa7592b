"""The GPU sweeps (benchmarks.size_sweep, finetune_sweep) on CPU with tiny settings: the right
runs, results read back from the stages' own files, reruns that skip what is finished.

No speed or quality level is asserted: the figures come from the GPU run (docs/results/gpu-wikibooks)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from benchmarks import finetune_sweep, size_sweep, sweep
from bertflow.errors import ConfigError
from bertflow.task_data import prepare_squad, prepare_text_task
from bertflow.tasks import GLUE_TASKS
from support.finetune import make_tiny_model
from support.pretrain import tokenized_corpus
from support.stages import wait_for_line

os.environ.setdefault("OMP_NUM_THREADS", "1")


def tiny_config(tmp_path, **sections) -> str:
    """A config file over config/config.yaml, as --configfile would give it: CPU, a tiny pretraining."""
    config = {"results_dir": str(tmp_path / "results"), "device": "cpu",
              "pretrain": {"batch_size": 8, "learning_rate": 1e-3, "max_eval_blocks": 8, "log_every_steps": 10,
                           "tensorboard": False, "compile": False},
              **sections}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_workflow_config_fills_defaults_and_names_bad_keys(tmp_path):
    config = sweep.workflow_config(tiny_config(tmp_path))
    assert config["pretrain"]["batch_size"] == 8  # the file's key over config/config.yaml's 32
    assert config["pretrain"]["preset"] == "tiny"  # config/config.yaml's
    assert config["pretrain"]["mlm_probability"] == 0.15  # the schema's default
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: {batch_sise: 8}\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        sweep.workflow_config(str(bad))


def test_size_sweep_bad_input_fails_before_compute(tmp_path, capsys):
    config = tiny_config(tmp_path)
    assert size_sweep.main(["--config", config, "--time-budget", "0.01"]) == 2
    assert "--tokenizer" in capsys.readouterr().err  # RESULTS_DIR/tokenizer does not exist
    with pytest.raises(ConfigError, match="--time-budget"):
        size_sweep.parse_args(["--time-budget", "0"])
    with pytest.raises(ConfigError, match="--set 'presett=mini'"):
        size_sweep.parse_args(["--time-budget", "1", "--set", "presett=mini"])
    shaped = tiny_config(tmp_path, pretrain={"model": {"hidden_size": 64, "num_attention_heads": 2}})
    assert size_sweep.main(["--config", shaped, "--time-budget", "0.01"]) == 2
    assert "pretrain.model sets hidden_size, num_attention_heads" in capsys.readouterr().err


def test_size_sweep_runs_each_preset_then_skips_finished_ones(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    data = tokenized_corpus(tmp_path / "data", sentences=600, seq_len=32)
    out = tmp_path / "sweep"
    argv = ["--config", tiny_config(tmp_path), "--presets", "tiny", "mini", "--time-budget", "0.02",
            "--tokenizer", str(data / "tokenizer"), "--blocks", str(data / "blocks"), "--out", str(out),
            "--set", "eval_every_steps=5"]
    assert size_sweep.main(argv) == 0
    result = json.loads((out / "size_sweep.json").read_text())
    assert [r["preset"] for r in result["rows"]] == ["tiny", "mini"] and result["pending"] == []
    tiny, mini = result["rows"]
    assert mini["parameters"] > tiny["parameters"]  # 4 x 256 against 2 x 128
    for row in result["rows"]:
        assert row["stopped_by"] == "time_budget" and row["steps"] > 0
        assert row["train_s"] >= 0.02 * 60  # the budget, counted in training seconds
        assert row["tokens_seen"] == row["steps"] * 8 * 32 and row["tokens_per_s"] > 0
        ppl = [p["perplexity"] for p in row["perplexity_rows"]]
        assert all(math.isfinite(p) and p > 1 for p in ppl) and ppl[-1] == row["final_perplexity"]
        assert ppl[-1] < ppl[0] or len(ppl) == 1  # training lowers the validation perplexity
        assert row["attempts"] == 1 and row["device"] == "cpu"
        assert not (out / row["preset"] / "model").exists()  # weights removed (no --keep-models)
    spec = json.loads((out / "tiny" / "spec.json").read_text())
    assert spec["train"]["preset"] == "tiny" and spec["train"]["time_budget"] == 0.02
    assert spec["train"]["batch_size"] == 8 and spec["train"]["eval_every_steps"] == 5  # config, then --set
    assert result["lowest_perplexity"] in ("tiny", "mini")
    table = (out / "size_sweep.md").read_text()
    assert "| tiny |" in table and "| mini |" in table
    capsys.readouterr()

    assert size_sweep.main(argv) == 0  # rerun: nothing left to train
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
    assert json.loads((out / "size_sweep.json").read_text())["rows"] == result["rows"]

    other = [*argv[:3], "tiny", *argv[5:-2], "--set", "eval_every_steps=5", "learning_rate=0.002"]
    (changed,), *_ = size_sweep.prepare(other)
    assert changed.spec["train"]["learning_rate"] == 0.002 and not changed.finished()  # other settings: trained again


def test_grid_points_and_bad_grids():
    assert sweep.grid_points({"learning_rate": [1e-4, 2e-4], "batch_size": [32, 64]}) == [
        {"learning_rate": 1e-4, "batch_size": 32}, {"learning_rate": 1e-4, "batch_size": 64},
        {"learning_rate": 2e-4, "batch_size": 32}, {"learning_rate": 2e-4, "batch_size": 64}]
    assert sweep.grid_points({}) == [{}]  # no axis: one run with the config's settings
    assert finetune_sweep.parse_grid(["sst2.learning_rate=5e-5,1e-4", "squad.epochs=2"]) == {
        "sst2": {"learning_rate": [5e-5, 1e-4]}, "squad": {"epochs": [2]}}
    assert finetune_sweep.parse_grid(["mnli.epochs=2"]) == {"mnli": {"epochs": [2]}}  # every GLUE task
    for bad in ("mrcp.learning_rate=1e-4", "sst2.learning_rat=1e-4", "sst2.epochs="):
        with pytest.raises(ConfigError, match="--grid"):
            finetune_sweep.parse_grid([bad])


def test_best_setting_is_the_highest_metric_per_task():
    rows = [{"task": "sst2", "setting": {"learning_rate": lr}, "metric": "accuracy", "value": value}
            for lr, value in ((1e-4, 80.0), (2e-4, 83.5), (4e-4, 83.5))]
    rows.append({"task": "squad", "setting": {"epochs": 2}, "metric": "f1", "value": 12.0})
    assert finetune_sweep.best_settings(rows) == {"sst2": {"setting": {"learning_rate": 2e-4}, "accuracy": 83.5},
                                                  "squad": {"setting": {"epochs": 2}, "f1": 12.0}}


def task_data(folder: Path) -> Path:
    """Generated SST-2 and SQuAD files in the layout the sweep reads (--data)."""
    prepare_text_task(GLUE_TASKS["sst2"], source="generated",
                      generated={"train_examples": 64, "validation_examples": 24, "seed": 3},
                      out_train=str(folder / "sst2" / "train.tsv"), out_validation=str(folder / "sst2" / "validation.tsv"))
    prepare_squad(source="generated", generated={"train_articles": 4, "validation_articles": 2, "seed": 5},
                  out_train=str(folder / "squad" / "train.json"),
                  out_validation=str(folder / "squad" / "validation.json"))
    return folder


def sigterm_sweep_once_logged(command: list[str], log: Path, marker: str) -> str:
    """Start a sweep, SIGTERM it (a deadline under `timeout`) once a run's stage.log holds `marker`,
    and expect its stopped exit code, 143; its output."""
    sweep_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_line(log, marker, sweep_process, timeout=120)
    sweep_process.send_signal(signal.SIGTERM)
    output = sweep_process.communicate(timeout=120)[0]
    assert sweep_process.returncode == 143, output
    return output


def test_finetune_sweep_runs_the_grid_picks_the_best_and_skips_finished_runs(tmp_path, capsys):
    model = make_tiny_model(tmp_path / "tiny")
    data = task_data(tmp_path / "data")
    config = tiny_config(tmp_path, finetune={"seeds": [7], "sst2": {"epochs": 2, "max_length": 32, "batch_size": 16},
                                             "squad": {"epochs": 1, "max_length": 64, "doc_stride": 32}})
    out = tmp_path / "sweep"
    argv = ["--config", config, "--model", model, "--data", str(data), "--out", str(out),
            "--grid", "sst2.learning_rate=1e-5,3e-3"]
    assert finetune_sweep.main(argv) == 0
    result = json.loads((out / "finetune_sweep.json").read_text())
    sst2 = [r for r in result["rows"] if r["task"] == "sst2"]
    assert [r["setting"] for r in sst2] == [{"learning_rate": 1e-5}, {"learning_rate": 3e-3}]
    (squad,) = [r for r in result["rows"] if r["task"] == "squad"]  # no grid for it: the config's settings
    assert squad["setting"] == {} and squad["metric"] == "f1" and len(squad["by_epoch"]) == 1
    for row in sst2:
        metrics = json.loads((out / "sst2" / f"learning_rate={row['setting']['learning_rate']}" / "metrics.json")
                             .read_text())
        assert row["value"] == metrics["accuracy"] == row["by_epoch"][-1] and len(row["by_epoch"]) == 2
        assert metrics["seed"] == 7 and metrics["settings"]["batch_size"] == 16  # the config's, under the grid's
        assert metrics["settings"]["learning_rate"] == row["setting"]["learning_rate"]
    top = max(sst2, key=lambda r: r["value"])
    assert result["best"]["sst2"] == {"setting": top["setting"], "accuracy": top["value"]}
    assert not list(out.glob("*/*/model"))  # fine-tuned weights removed
    assert "Best for sst2: learning_rate=" in (out / "finetune_sweep.md").read_text()
    capsys.readouterr()

    assert finetune_sweep.main(argv) == 0  # rerun: every run finished
    assert capsys.readouterr().out.count("finished earlier, skipped") == 3


def test_finetune_sweep_stopped_by_sigterm_resumes_the_run_it_stopped(tmp_path):
    """The stage checkpoints at its next step; the same command again resumes that run (the
    epochs' rows span both attempts) instead of starting it over."""
    model = make_tiny_model(tmp_path / "tiny")
    data = task_data(tmp_path / "data")
    config = tiny_config(tmp_path, finetune={"seeds": [7], "sst2": {"epochs": 60, "max_length": 32, "batch_size": 8}})
    out = tmp_path / "sweep"
    argv = ["--config", config, "--model", model, "--data", str(data), "--out", str(out), "--tasks", "sst2",
            "--grid", "sst2.learning_rate=1e-3"]
    run = out / "sst2" / "learning_rate=0.001"
    log = run / "stage.log"
    sigterm_sweep_once_logged([sys.executable, "-m", "benchmarks.finetune_sweep", *argv], log, "sst2 epoch 2:")
    stopped = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert 2 <= stopped["epoch"] < 60

    assert finetune_sweep.main(argv) == 0
    assert f"resumed from {run / 'checkpoints' / 'last.pt'}" in log.read_text()
    row = next(r for r in json.loads((out / "finetune_sweep.json").read_text())["rows"] if r["task"] == "sst2")
    assert row["attempts"] == 2 and len(row["by_epoch"]) == 60
    assert row["by_epoch"][:stopped["epoch"]] == [epoch["accuracy"] for epoch in stopped["rows"]]


def test_finetune_sweep_names_missing_task_files(tmp_path, capsys):
    model = make_tiny_model(tmp_path / "tiny")
    argv = ["--config", tiny_config(tmp_path), "--model", model, "--data", str(tmp_path / "nothing")]
    assert finetune_sweep.main(argv) == 2
    assert "nothing/sst2/train.tsv" in capsys.readouterr().err


def test_size_sweep_stopped_by_sigterm_resumes_from_the_checkpoint(tmp_path):
    """SIGTERM to the sweep (a deadline under `timeout`): the preset checkpoints, exit 143; the same
    command again resumes it and its budget counts the training time already spent."""
    (tmp_path / "data").mkdir()
    data = tokenized_corpus(tmp_path / "data", sentences=600, seq_len=32)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "benchmarks.size_sweep", "--config", tiny_config(tmp_path), "--presets", "tiny",
               "--time-budget", "0.25", "--tokenizer", str(data / "tokenizer"), "--blocks", str(data / "blocks"),
               "--out", str(out)]
    log = out / "tiny" / "stage.log"
    sigterm_sweep_once_logged(command, log, "pretrain epoch 1 step")  # training has begun
    assert (out / "tiny" / "checkpoints" / "last.pt").is_file()
    assert json.loads((out / "size_sweep.json").read_text())["pending"] == ["tiny"]

    assert size_sweep.main(command[3:]) == 0
    assert "resumed from" in log.read_text()
    (row,) = json.loads((out / "size_sweep.json").read_text())["rows"]
    assert row["attempts"] == 2 and row["stopped_by"] == "time_budget"
    assert 0.25 * 60 <= row["train_s"] < 0.25 * 60 + 5  # one budget over both runs, not one per run


def device_call(tmp_path: Path, *args: str, **env_extra: str) -> tuple[Path, Path, Path]:
    """profiles/airgapped/gpu_sweeps.sh BUNDLE OUT ARGS as a GPU node runs it, here on CPU: a bundle
    without packages (this environment has them), a repository copy (the script links
    ../shared/data beside it). Returns the copy, the bundle and OUT."""
    import shutil
    import tarfile

    from support.workflow import REPO

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Snakefile", "environment.yml", "requirements.txt", "pyproject.toml"):
        shutil.copy(REPO / name, repo / name)
    for name in ("rules", "scripts", "src", "benchmarks", "config", "profiles", "tests"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    bundle = tmp_path / "bundle"
    (bundle / "data").mkdir(parents=True)
    with tarfile.open(bundle / "site-packages.tar.gz", "w:gz"):
        pass
    (repo / "config" / "tiny_sweeps.yaml").write_text(yaml.safe_dump({
        "results_dir": "results/tiny", "device": "cpu", "corpus": {"generated": {"num_sentences": 1500}},
        "tokenizer": {"vocab_size": 300}, "pretrain": {"seq_len": 32, "batch_size": 8, "max_eval_blocks": 8,
                                                     "tensorboard": False}}))
    python_dir = tmp_path / "bin"  # `python3` on the node is the one with torch: here, this interpreter
    python_dir.mkdir()
    (python_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (python_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{python_dir}:{os.environ['PATH']}", "SWEEP_CONFIG": "config/tiny_sweeps.yaml",
           "SWEEP_LIMIT_S": "240", "BERTFLOW_SITE": str(tmp_path / "site"), **env_extra}
    env.pop("PYTHONPATH", None)  # the script puts the bundle and the copy's src/ there
    out = tmp_path / "out"
    done = subprocess.run(["profiles/airgapped/gpu_sweeps.sh", str(bundle), str(out), *args], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return repo, bundle, out


def test_gpu_sweeps_script_runs_the_data_stages_and_the_size_sweep(tmp_path):
    repo, bundle, out = device_call(tmp_path, "size", "--presets", "tiny", "--time-budget", "0.02", "--keep-models")
    assert (tmp_path / "shared" / "data").resolve() == (bundle / "data").resolve()
    (row,) = json.loads((out / "size_sweep" / "size_sweep.json").read_text())["rows"]
    assert row["preset"] == "tiny" and row["stopped_by"] == "time_budget"
    assert (out / "device.txt").is_file() and "tokenize_corpus" in (out / "snakemake.log").read_text()
    assert (out / "logs" / "tokenize_corpus.log").is_file() and (out / "size_sweep" / "tiny" / "stage.log").is_file()
    assert not [p for p in out.rglob("*") if p.name in ("model", "checkpoints") or p.suffix in (".safetensors", ".pt")]
    assert (repo / "results" / "tiny" / "blocks").is_dir()  # results stay on the node for a rerun
    assert (repo / "results" / "tiny" / "size_sweep" / "tiny" / "model").is_dir()  # kept there, not copied


def test_gpu_sweeps_script_runs_the_unpadding_checks(tmp_path):
    """`unpad_check`: tests/test_unpadding.py on the device (cuda; here the CPU), pytest from the
    bundle (profiles/airgapped/missing.txt)."""
    _, _, out = device_call(tmp_path, "unpad_check", BERTFLOW_TEST_DEVICE="cpu")
    log = (out / "unpad_check.log").read_text()
    assert "test_sequence_classification_logits_and_gradients_match_the_padded_forward" in log
    assert " passed" in log and " failed" not in log and "error" not in log.lower(), log[-3000:]
