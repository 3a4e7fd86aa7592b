"""A pretraining process killed mid-epoch (SIGTERM, as SLURM sends) resumes to the same model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file


def spec(run, out, **train):
    settings = {"preset": "tiny", "model": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128},
                "seq_len": 32, "epochs": 2, "batch_size": 8, "learning_rate": 2e-3, "log_every_steps": 1, **train}
    return {
        "tokenizer_dir": str(run / "results/tokenizer"),
        "blocks_dir": str(run / "results/blocks"),
        "outputs": {k: str(out / name) for k, name in
                    (("model", "model"), ("perplexity", "ppl.csv"), ("plot", "ppl.png"), ("info", "info.json"))},
        "train": settings, "device": "cpu", "seed": 5, "checkpoint_dir": str(out / "checkpoints"),
    }


def start(spec_dict, path):
    path.write_text(json.dumps(spec_dict))
    return subprocess.Popen([sys.executable, "-m", "bertflow.pretrain", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigterm_mid_epoch_checkpoints_and_resume_matches_uninterrupted(tiny_run, tmp_path):
    reference_out, resumed_out = tmp_path / "reference", tmp_path / "resumed"
    assert start(spec(tiny_run, reference_out), tmp_path / "a.json").wait(timeout=600) == 0

    proc = start(spec(tiny_run, resumed_out), tmp_path / "b.json")
    for line in proc.stdout:  # kill once a few steps of the first epoch are done
        if "epoch 1 step 5/" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 143, rest
    checkpoint = torch.load(resumed_out / "checkpoints/last.pt", weights_only=False)
    stopped_at = checkpoint["progress"]["global_step"]
    assert 5 <= stopped_at and checkpoint["progress"]["epoch"] == 0, "expected a mid-epoch checkpoint"
    assert not (resumed_out / "model").exists()

    resumed = start(spec(tiny_run, resumed_out), tmp_path / "b.json")
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    assert f"resumed from {resumed_out / 'checkpoints/last.pt'}: epoch 1, step {stopped_at}" in log

    info_ref = json.loads((reference_out / "info.json").read_text())
    info_res = json.loads((resumed_out / "info.json").read_text())
    assert info_res["steps"] == info_ref["steps"]
    weights_ref = load_file(reference_out / "model/model.safetensors")
    weights_res = load_file(resumed_out / "model/model.safetensors")
    for name, tensor in weights_ref.items():
        torch.testing.assert_close(weights_res[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert not (resumed_out / "checkpoints").exists(), "a finished run removes its checkpoint"


def test_checkpoint_from_other_settings_is_not_resumed(tiny_run, tmp_path):
    out = tmp_path / "out"
    proc = start(spec(tiny_run, out), tmp_path / "a.json")
    for line in proc.stdout:
        if "epoch 1 step 3/" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.stdout.read()
    assert proc.wait(timeout=120) == 143
    other = start(spec(tiny_run, out, learning_rate=1e-3, epochs=1), tmp_path / "c.json")
    log = other.communicate(timeout=600)[0]
    assert other.returncode == 0, log
    assert "made with other settings or data" in log and "resumed from" not in log
