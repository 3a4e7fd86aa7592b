"""Faults through the workflow: a pretraining or fine-tuning job killed mid-epoch with SIGTERM
(what SLURM sends at a job's time limit) resumes from its checkpoint, and a failed stage leaves no
output that Snakemake would take as complete.

The stages themselves (checkpoint contents, bit-identical resume) are tested in
test_pretrain_resume.py and test_finetune_resume.py; here the workflow does the killing and the
rerunning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil

from support.stages import wait_for_line
from support.workflow import snakemake, snakemake_command, write_config

PRETRAIN_OUTPUTS = ("model", "perplexity.csv", "perplexity.png", "train_info.json")


def start_snakemake(workdir: Path, config: Path, *args: str,
                    target: str = "results/pretrain/train_info.json") -> subprocess.Popen:
    cmd = snakemake_command(workdir, *args, "--", target, configfile=config)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stage_process(workflow: subprocess.Popen, script: str = "pretrain.py") -> psutil.Process:
    """The Python process running a stage script (a child of Snakemake)."""
    for child in psutil.Process(workflow.pid).children(recursive=True):
        if any(script in part for part in child.cmdline()):
            return child
    raise AssertionError(f"no {script} process under snakemake")


def fresh_pretraining(tmp_path: Path) -> Path:
    """The tiny run with a pretraining setting changed, so pretraining (only) is due again.

    Three epochs (of `steps_per_epoch` steps), checkpoints every 10 steps as well as at epoch ends.
    """
    return write_config(tmp_path / "c.yaml", pretrain={"epochs": 3, "checkpoint_every_steps": 10})


def three_epochs_of_steps(run: Path) -> int:
    """Steps of the 3-epoch rerun: the tiny run trains on the same blocks (30 to 59 steps per epoch,
    so step 60 falls in epoch 2 and step 20 in epoch 1)."""
    per_epoch = json.loads((run / "results/pretrain/train_info.json").read_text())["steps_per_epoch"]
    assert 30 <= per_epoch < 60, per_epoch
    return 3 * per_epoch


def test_sigterm_mid_epoch_then_rerun_resumes_and_ends_with_the_same_steps(tiny_run_copy, tmp_path):
    config = fresh_pretraining(tmp_path)
    total = three_epochs_of_steps(tiny_run_copy)
    log = tiny_run_copy / "results/logs/pretrain.log"
    log.unlink()
    proc = start_snakemake(tiny_run_copy, config)
    wait_for_line(log, f"epoch 2 step 60/{total}", proc)
    os.killpg(proc.pid, signal.SIGTERM)  # as SLURM does: every process of the job gets SIGTERM
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0

    checkpoint = tiny_run_copy / "results/pretrain/checkpoints/last.pt"
    assert checkpoint.is_file(), output[-3000:]
    text = log.read_text()
    assert "received signal 15" in text
    for name in PRETRAIN_OUTPUTS:  # nothing Snakemake could mistake for a finished stage
        assert not (tiny_run_copy / "results/pretrain" / name).exists(), name
    dry = snakemake(tiny_run_copy, "--dry-run", "--", "results/pretrain/train_info.json", configfile=config)
    assert "pretrain" in dry.stdout, "the interrupted stage must be planned again"

    # A touched corpus (or an identical copy over it) retrains the tokenizer and re-packs the blocks;
    # both come out byte-identical, so the checkpoint is still this run's and is resumed. (Snakemake
    # compares checksums of small inputs, so touching the tiny corpus alone reruns nothing:
    # --forcerun does what a touched large corpus does.)
    rerun = start_snakemake(tiny_run_copy, config, "--forcerun", "train_tokenizer")
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, output[-4000:]
    assert "rule train_tokenizer:" in output and "rule tokenize_corpus:" in output, output[-4000:]
    text = log.read_text()
    resumed = [line for line in text.splitlines() if "resumed from" in line]
    assert resumed, text[-3000:]
    step = int(resumed[-1].split("step ")[1].split()[0])
    assert 60 <= step < total, "resumed from the checkpoint written on SIGTERM"
    # Where the signal lands depends on the machine's load (usually in epoch 2, a few steps after 60).
    epoch, per_epoch = int(resumed[-1].split("epoch ")[1].split(",")[0]), total // 3
    assert (epoch - 1) * per_epoch <= step <= epoch * per_epoch, resumed
    info = json.loads((tiny_run_copy / "results/pretrain/train_info.json").read_text())
    assert info["steps"] == total and info["epochs"] == 3
    assert not checkpoint.exists()


def test_retries_resume_a_pretraining_killed_by_sigterm_in_the_same_run(tiny_run_copy, tmp_path):
    """`retries` (profiles/slurm sets 2): the stage gets SIGTERM, checkpoints and fails;
    Snakemake starts it again at once and it resumes, so one invocation completes."""
    config = fresh_pretraining(tmp_path)
    total = three_epochs_of_steps(tiny_run_copy)
    log = tiny_run_copy / "results/logs/pretrain.log"
    log.unlink()
    proc = start_snakemake(tiny_run_copy, config, "--retries", "1")
    wait_for_line(log, f"epoch 1 step 20/{total}", proc)
    stage_process(proc).send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output[-4000:]
    # Snakemake clears a failed job's log before the retry: this is the second attempt's.
    resumed = [line for line in log.read_text().splitlines() if "resumed from" in line]
    assert resumed and "epoch 1, step " in resumed[0], "the retry must resume the killed attempt"
    assert int(resumed[0].split("step ")[1].split()[0]) >= 20
    info = json.loads((tiny_run_copy / "results/pretrain/train_info.json").read_text())
    assert info["steps"] == total


def test_retries_resume_a_finetuning_killed_by_sigterm_in_the_same_run(tiny_run_copy, tmp_path):
    """The same for a fine-tuning job: its checkpoint (outside the declared outputs) survives the
    failed attempt, and the retry trains only the epochs left."""
    # A new LR: due again. 12 epochs of about half a second: time for the signal to land mid-run.
    sst2 = {"source": "generated", "epochs": 12, "max_length": 48, "learning_rate": 2e-4}
    config = write_config(tmp_path / "c.yaml", finetune={"seeds": [1], "baselines": {}, "sst2": sst2})
    target = "results/finetune/sst2/pretrained/seed1/metrics.json"
    seed_dir = tiny_run_copy / Path(target).parent
    log = tiny_run_copy / "results/logs/finetune_sst2_pretrained_seed1.log"
    log.unlink()
    proc = start_snakemake(tiny_run_copy, config, "--retries", "1", target=target)
    wait_for_line(log, "sst2 epoch 1:", proc)
    stage_process(proc, "finetune.py").send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output[-4000:]
    resumed = [line for line in log.read_text().splitlines() if "resumed from" in line]
    assert resumed and "sst2: resumed from" in resumed[0], "the retry must resume the killed attempt"
    assert "epoch 1, step 0 " not in resumed[0], "from where the signal stopped it, not the beginning"
    assert "made with other settings" not in log.read_text()
    metrics = json.loads((seed_dir / "metrics.json").read_text())
    assert metrics["resumed"] is True and metrics["settings"]["learning_rate"] == 2e-4
    assert [row["epoch"] for row in metrics["epochs"]] == list(range(1, 13))
    assert not (seed_dir / "checkpoints").exists()
