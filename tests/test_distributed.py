"""Data-parallel stages: 2 CPU processes (gloo) through `bertflow.distributed.launch` (torchrun).

Each multi-process run is compared with a single-process run of the same global batch: the same
examples in the same order. Pretraining cannot match exactly, because masks are drawn per rank. Stated tolerances:
pretraining (dropout off, masks still per rank): validation loss after one epoch (fixed masks, the
same for both) within 3%; fine-tuning (dropout off, no masks, so no per-process randomness): every
epoch's training loss within 0.01% (+1e-5), over three epochs in which the loss falls well below chance.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bertflow.distributed import LaunchError, is_main_process, launch, launcher_command, rank, world_size

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def tests_on_path(monkeypatch):
    """The launched processes import `support.distributed` from tests/."""
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}:{os.environ.get('PYTHONPATH', '')}")


def traced_launch(entry: str, spec: dict, out: Path, tmp_path: Path, processes: int = 2) -> dict[int, list[str]]:
    """Launch `entry` in `processes` gloo processes; returns rank -> paths it wrote under `out`."""
    trace = tmp_path / f"trace-{out.name}"
    log = io.StringIO()
    launch("support.distributed", {**spec, "_entry": entry, "_watch": str(out), "_trace": str(trace)},
           processes, cpu=True, stream=log)
    return {r: (trace / f"rank{r}.txt").read_text().split("\n")[:-1] if (trace / f"rank{r}.txt").exists() else []
            for r in range(processes)}


def single_process(module: str, spec: dict, tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    result = subprocess.run([sys.executable, "-m", module, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


# ----------------------------------------------------------------------------- the launcher


def test_rank_helpers_outside_a_launch(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert (rank(), world_size(), is_main_process()) == (0, 1, True)
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


def test_launcher_command_is_torchrun_standalone_with_this_python():
    command = launcher_command("bertflow.pretrain", "/tmp/spec.json", 4)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in command and command[command.index("--nproc_per_node") + 1] == "4"
    assert command[-3:] == ["-m", "bertflow.pretrain", "/tmp/spec.json"]


def test_more_gpu_processes_than_gpus_fails_before_launching():
    from bertflow.errors import ResourceError

    with pytest.raises(ResourceError, match="GPU processes requested"):
        launch("bertflow.pretrain", {}, 64, cpu=False)


def test_two_gloo_processes_reduce_and_only_rank0_writes(tests_on_path, tmp_path):
    out = tmp_path / "probe"
    out.mkdir()
    writes = traced_launch("probe", {"cpu": True, "out": str(out / "result.json")}, out, tmp_path)
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == result["accelerate_processes"] == 2
    assert result["rank_sum"] == 1.0 and result["backend"] == "gloo"
    assert writes[0] and not writes[1]


def test_failing_rank_raises_with_its_exit_code(tests_on_path, tmp_path):
    out = tmp_path / "probe"
    out.mkdir()
    with pytest.raises(LaunchError, match=r"exit codes \[[^\]]*\b3\b"):
        traced_launch("probe", {"cpu": True, "out": str(out / "r.json"), "fail_rank": 1}, out, tmp_path)


def test_failing_rank_names_its_exception(tests_on_path, tmp_path):
    """The launcher's error is the stage log's last line: it carries the rank's exception."""
    out = tmp_path / "probe"
    out.mkdir()
    with pytest.raises(LaunchError, match="first error: RuntimeError: rank 1 raising on purpose"):
        traced_launch("probe", {"cpu": True, "out": str(out / "r.json"), "raise_rank": 1}, out, tmp_path)


# ----------------------------------------------------------------------------- the real stages


def pretrain_spec(run: Path, out: Path, batch_size: int) -> dict:
    # Dropout off: the remaining difference between world sizes is the per-rank masks.
    model = {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
             "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    return {
        "tokenizer_dir": str(run / "results/tokenizer"),
        "blocks_dir": str(run / "results/blocks"),
        "outputs": {k: str(out / name) for k, name in
                    (("model", "model"), ("perplexity", "ppl.csv"), ("plot", "ppl.png"), ("info", "info.json"))},
        "train": {"preset": "tiny", "model": model, "seq_len": 32, "epochs": 1, "batch_size": batch_size,
                  "learning_rate": 2e-3, "log_every_steps": 5},
        "device": "cpu", "seed": 5, "checkpoint_dir": str(out / "checkpoints"),
    }


def eval_loss(out: Path) -> float:
    return float(list(csv.DictReader(open(out / "ppl.csv")))[-1]["eval_loss"])


def test_distributed_pretraining_matches_single_process_and_only_rank0_writes(tiny_run, tests_on_path, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    single_process("bertflow.pretrain", pretrain_spec(tiny_run, single, 16), tmp_path, "single")
    multi.mkdir()
    writes = traced_launch("bertflow.pretrain", pretrain_spec(tiny_run, multi, 8), multi, tmp_path)

    info_single = json.loads((single / "info.json").read_text())
    info_multi = json.loads((multi / "info.json").read_text())
    assert info_multi["processes"] == 2 and info_single["processes"] == 1
    assert info_multi["global_batch_blocks"] == info_single["global_batch_blocks"] == 16
    assert info_multi["steps"] == info_single["steps"] > 10
    assert info_multi["tokens_seen"] == info_single["tokens_seen"]
    loss_single, loss_multi = eval_loss(single), eval_loss(multi)
    assert loss_single < 5.4, "the single-process run should have learned (uniform guessing: ln 300 = 5.70)"
    assert abs(loss_multi - loss_single) <= 0.03 * loss_single, (loss_single, loss_multi)

    assert writes[0], "rank 0 wrote nothing"
    assert writes[1] == [], f"rank 1 wrote outputs: {writes[1]}"
    assert (multi / "model/model.safetensors").is_file() and not (multi / "checkpoints").exists()


def launch_and_stop_all(module: str, spec: dict, tmp_path: Path, after: str) -> None:
    """Launch MODULE in 2 gloo processes and, once a line holds `after`, send SIGTERM to the job's
    every process (stage script, torchrun, ranks), as SLURM does at a time limit."""
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    driver = ("import json, sys; from bertflow.distributed import launch; "
              f"launch({module!r}, json.load(open({str(tmp_path / 'spec.json')!r})), 2, cpu=True)")
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    for line in proc.stdout:
        if after in line:
            os.killpg(proc.pid, signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) != 0
    assert "LaunchError" in rest and "stopped by signal 15" in rest and "rerun to resume" in rest, rest[-3000:]


def test_sigterm_to_every_process_of_a_launch_checkpoints_and_a_relaunch_resumes(tiny_run, tmp_path):
    """SLURM's time limit: SIGTERM to the job's every process (stage script, torchrun, ranks)."""
    import torch

    out = tmp_path / "killed"
    spec = pretrain_spec(tiny_run, out, 8)
    spec["train"] = {**spec["train"], "epochs": 2}
    launch_and_stop_all("bertflow.pretrain", spec, tmp_path, after="epoch 1 step 10/")
    progress = torch.load(out / "checkpoints/last.pt", weights_only=False)["progress"]
    assert progress["epoch"] == 0 and progress["global_step"] >= 10
    assert not (out / "info.json").exists() and not (out / "model").exists()

    log = io.StringIO()
    launch("bertflow.pretrain", spec, 2, cpu=True, stream=log)
    assert f"resumed from {out / 'checkpoints/last.pt'}: epoch 1, step {progress['global_step']}" in log.getvalue()
    info = json.loads((out / "info.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 2 * info["steps_per_epoch"] > progress["global_step"]
    assert not (out / "checkpoints").exists()


def dropout_free_copy(model_dir: Path, target: Path) -> Path:
    """The pretrained model with dropout off: fine-tuning then has no per-process randomness."""
    shutil.copytree(model_dir, target)
    config = json.loads((target / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (target / "config.json").write_text(json.dumps(config))
    return target


def finetune_spec(run: Path, model_dir: Path, out: Path, batch_size: int) -> dict:
    return {
        "task": "sst2", "model_name": "pretrained", "model_dir": str(model_dir),
        "train_file": str(run / "results/data/sst2/train.tsv"),
        "validation_file": str(run / "results/data/sst2/validation.tsv"),
        "out_dir": str(out),
        "settings": {"epochs": 3, "batch_size": batch_size, "max_length": 24, "learning_rate": 1e-3},
        "seed": 1, "device": "cpu", "checkpoint_dir": str(out / "checkpoints"),
    }


def test_distributed_finetuning_matches_single_process_and_only_rank0_writes(tiny_run, tests_on_path, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    model = dropout_free_copy(tiny_run / "results/pretrain/model", tmp_path / "model")
    single_process("bertflow.finetune", finetune_spec(tiny_run, model, single, 8), tmp_path, "ft-single")
    multi.mkdir()
    writes = traced_launch("bertflow.finetune", finetune_spec(tiny_run, model, multi, 4), multi, tmp_path)

    m_single = json.loads((single / "metrics.json").read_text())
    m_multi = json.loads((multi / "metrics.json").read_text())
    assert (m_single["processes"], m_multi["processes"]) == (1, 2)
    losses_single = [e["train_loss"] for e in m_single["epochs"]]
    losses_multi = [e["train_loss"] for e in m_multi["epochs"]]
    assert losses_single[-1] < 0.6, "three epochs should bring the loss well below chance (ln 2 = 0.69)"
    # Same data, same order, no dropout: DDP's averaged gradients equal the big batch's up to float
    # summation order, so every epoch's loss agrees closely.
    for single_loss, multi_loss in zip(losses_single, losses_multi):
        assert abs(multi_loss - single_loss) <= 1e-4 * single_loss + 1e-5, (losses_single, losses_multi)
    assert m_multi["examples"] == m_single["examples"]

    assert writes[0] and writes[1] == [], f"rank 1 wrote outputs or checkpoints: {writes[1]}"
    assert (multi / "model/model.safetensors").is_file() and not (multi / "checkpoints").exists()


def test_sigterm_to_every_process_of_a_finetune_launch_checkpoints_and_a_relaunch_resumes(tiny_run, tmp_path):
    """The ranks agree on the step to stop at (at a log point), rank 0 writes the checkpoint, and the
    relaunch trains only the rest: the epochs' rows span both launches."""
    import torch

    out = tmp_path / "killed"
    spec = finetune_spec(tiny_run, tiny_run / "results/pretrain/model", out, 4)
    launch_and_stop_all("bertflow.finetune", spec, tmp_path, after="sst2 epoch 1:")
    progress = torch.load(out / "checkpoints/last.pt", weights_only=True)["progress"]
    assert progress["epoch"] >= 1 and len(progress["rows"]) == progress["epoch"] < 3
    assert not (out / "metrics.json").exists()

    log = io.StringIO()
    launch("bertflow.finetune", spec, 2, cpu=True, stream=log)
    assert f"resumed from {out / 'checkpoints/last.pt'}: epoch {progress['epoch'] + 1}" in log.getvalue()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["resumed"] is True
    assert metrics["epochs"][0] == progress["rows"][0] and len(metrics["epochs"]) == 3
    assert not (out / "checkpoints").exists()


# ----------------------------------------------------------------------------- through the workflow


@pytest.mark.slow
def test_workflow_launches_num_processes_for_pretraining_and_finetuning(tiny_run_copy, tmp_path):
    """pretrain.num_processes / finetune.num_processes reach the launcher through the rules: the
    stages rerun (a changed process count is a changed stage) and each runs as 2 gloo processes."""
    from support.workflow import snakemake, write_config

    config = write_config(tmp_path / "two.yaml", pretrain={"num_processes": 2, "batch_size": 8},
                          finetune={"num_processes": 2, "sst2": {"batch_size": 4}})
    target = "results/finetune/sst2/pretrained/seed1/metrics.json"
    plan = snakemake(tiny_run_copy, "--dry-run", "--", target, configfile=config).stdout
    assert "rule pretrain:" in plan and "rule finetune:" in plan
    snakemake(tiny_run_copy, "--", target, configfile=config)

    results = tiny_run_copy / "results"
    info = json.loads((results / "pretrain/train_info.json").read_text())
    assert info["processes"] == 2 and info["global_batch_blocks"] == 16
    assert "launching 2 CPU (gloo) processes" in (results / "logs/pretrain.log").read_text()
    metrics = json.loads((results / "finetune/sst2/pretrained/seed1/metrics.json").read_text())
    assert metrics["processes"] == 2
    assert "launching 2 CPU (gloo) processes" in (results / "logs/finetune_sst2_pretrained_seed1.log").read_text()


# ----------------------------------------------------------------------------- several nodes
#
# The multi-node launch is srun + one torchrun agent per node + c10d rendezvous. Here `srun` and
# `scontrol` are tests/support/fake_slurm's stand-ins: srun starts the node agents on this host,
# one process group per "node", each bound to its --cpus-per-task CPUs; scontrol names two nodes
# at 127.0.0.1. Everything after srun (the node agents, torchrun --nnodes 2, the rendezvous, the
# ranks) is the real thing. The real srun on a real (two-node) SLURM: tests/test_slurm.py.

FAKE_SLURM = TESTS / "support" / "fake_slurm"


@pytest.fixture
def fake_slurm(monkeypatch):
    """A SLURM job of two nodes on this host; the job id sets the rendezvous port (pid: unlikely to
    collide with a parallel test run)."""
    monkeypatch.setenv("PATH", f"{FAKE_SLURM}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", str(os.getpid()))


def two_node_launch(module: str, spec: dict, shared: Path, stream=None) -> None:
    """1 process on each of 2 nodes; srun's --cpus-per-task is the job's (fake scontrol: 1)."""
    launch(module, spec, 1, cpu=True, nodes=2, shared_dir=str(shared), stream=stream)


def test_multinode_command_is_srun_with_one_torchrun_agent_per_node():
    from bertflow.distributed import Rendezvous, port_for_job

    rendezvous = Rendezvous(head="10.0.0.7", port=port_for_job("123456"), run_id="123456")
    command = launcher_command("bertflow.pretrain", "/shared/SPEC.json", 4, nodes=3, rendezvous=rendezvous,
                               cpus_per_node=32, cpu=False)
    srun = command[:command.index(sys.executable)]
    assert srun[0] == "srun" and "--kill-on-bad-exit=1" in srun and "--cpus-per-task=32" in srun
    assert srun[srun.index("--nodes") + 1] == srun[srun.index("--ntasks") + 1] == "3"
    assert srun[srun.index("--ntasks-per-node") + 1] == "1" and srun[srun.index("--jobid") + 1] == "123456"
    agent = command[len(srun):command.index("--") + 1]
    assert agent == [sys.executable, "-m", "bertflow.distributed", "node-agent", "4", "gpu", "--"]
    torchrun = command[len(srun) + len(agent):]
    assert torchrun[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--standalone" not in torchrun
    for flag, value in (("--nnodes", "3"), ("--nproc_per_node", "4"), ("--rdzv_backend", "c10d"),
                        ("--rdzv_endpoint", f"10.0.0.7:{rendezvous.port}"), ("--rdzv_id", "123456")):
        assert torchrun[torchrun.index(flag) + 1] == value, flag
    assert torchrun[-3:] == ["-m", "bertflow.pretrain", "/shared/SPEC.json"]
    # The port is the job's: the same for every agent, another for the next job, never torchrun's default.
    assert port_for_job("123456") == port_for_job("123456") != port_for_job("123457")
    assert all(30000 <= port_for_job(str(job)) < 50000 for job in (1, 29500, 10**9))


def test_spec_json_is_written_to_the_shared_folder_never_a_node_local_one(fake_slurm, monkeypatch, tmp_path):
    """Every node reads SPEC.json: it must lie in the shared folder given (beside the checkpoints),
    not in this node's temporary folder; a multi-node launch without a shared folder is refused."""
    import tempfile

    import bertflow.distributed as distributed

    local_tmp = tmp_path / "node-local-tmp"
    local_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(local_tmp))
    seen = []

    def record(command, env, stream):
        assert "--cpus-per-task=1" in command  # the job's CPUs per task, from scontrol
        spec_path = Path(command[-1])
        seen.append((spec_path, spec_path.is_file() and json.loads(spec_path.read_text())))
        return distributed.Outcome(0, [], [], [], [])

    monkeypatch.setattr(distributed, "run_forwarding_signals", record)
    shared = tmp_path / "results/pretrain/launch"
    two_node_launch("bertflow.pretrain", {"seed": 3}, shared)
    (spec_path, content), = seen
    assert spec_path.parent == shared.resolve() and content == {"seed": 3}
    assert local_tmp not in spec_path.parents and Path(tempfile.gettempdir()) not in spec_path.parents
    assert not spec_path.exists(), "SPEC.json outlived its launch"
    with pytest.raises(LaunchError, match="shared folder"):
        launch("bertflow.pretrain", {}, 1, cpu=True, nodes=2)


def test_multinode_launch_outside_slurm_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(LaunchError, match="SLURM_JOB_ID is not set.*pretrain.nodes: 1"):
        two_node_launch("bertflow.pretrain", {}, tmp_path)


def test_slurm_resources_ask_for_every_node_and_gpus_per_node():
    from bertflow.distributed import slurm_resources

    assert slurm_resources(1, 4, 4) == {"gpu": 4}
    gpu = slurm_resources(2, 4, 4)
    assert {k: v for k, v in gpu.items() if k != "cpus_per_task"} == {
        "nodes": 2, "tasks": 2, "mpi": "srun", "gres": "gpu:4", "tasks_per_gpu": 0}
    assert gpu["cpus_per_task"](None, threads=16) == 16  # the node's CPUs go to its one task
    cpu = slurm_resources(3, 2, 0)
    assert "gres" not in cpu and "gpu" not in cpu and (cpu["nodes"], cpu["tasks"]) == (3, 3)


def test_multinode_config_problems_name_the_key_and_the_fix(tmp_path):
    from bertflow.checks import check_multinode, multinode_problems, world_size_problems
    from bertflow.errors import ConfigError

    pretrain = {"nodes": 2, "num_processes": 4, "batch_size": 8, "grad_accum": 2}
    assert multinode_problems(pretrain, "slurm") == [] and multinode_problems({**pretrain, "nodes": 1}, "local") == []
    local, = multinode_problems(pretrain, "local")
    assert "pretrain.nodes is 2" in local and "profiles/slurm" in local and "pretrain.nodes: 1" in local
    assert "expected 1 or more" in multinode_problems({**pretrain, "nodes": 0}, "slurm")[0]
    # 2 nodes x 4 processes x 8 x 2 accumulation = 128 blocks per optimizer step.
    assert world_size_problems(pretrain, {"train_blocks": 128}, "b") == []
    short, = world_size_problems(pretrain, {"train_blocks": 127}, "results/blocks")
    assert "results/blocks: 127 training blocks" in short and "one global batch of 128" in short
    (tmp_path / "blocks_meta.json").write_text(json.dumps({"train_blocks": 100}))
    with pytest.raises(ConfigError, match="100 training blocks"):
        check_multinode(pretrain, "slurm", str(tmp_path))
    check_multinode(pretrain, "slurm", str(tmp_path / "not-yet"))  # blocks not made yet: checked at launch


def safetensors_bytes(out: Path) -> bytes:
    return (out / "model/model.safetensors").read_bytes()


def losses(out: Path) -> list[str]:
    return [row["eval_loss"] for row in csv.DictReader(open(out / "ppl.csv"))]


def test_two_nodes_match_one_node_of_two_processes_and_only_global_rank0_writes(tiny_run, fake_slurm,
                                                                                 tests_on_path, tmp_path):
    """Same world size (2), same global ranks: the same losses and byte-identical weights."""
    one, two = tmp_path / "one-node", tmp_path / "two-nodes"
    launch("bertflow.pretrain", pretrain_spec(tiny_run, one, 8), 2, cpu=True, stream=io.StringIO())
    two.mkdir()
    trace, log = tmp_path / "trace", io.StringIO()
    spec = {**pretrain_spec(tiny_run, two, 8), "_entry": "bertflow.pretrain", "_watch": str(two), "_trace": str(trace)}
    two_node_launch("support.distributed", spec, tmp_path / "shared", stream=log)

    assert losses(two) == losses(one) and safetensors_bytes(two) == safetensors_bytes(one)
    info = json.loads((two / "info.json").read_text())
    assert (info["processes"], info["nodes"], info["processes_per_node"]) == (2, 2, 1)
    assert [(n["node_rank"], n["devices"]) for n in info["environment"]["nodes"]] == [(0, ["cpu"]), (1, ["cpu"])]
    assert json.loads((one / "info.json").read_text())["nodes"] == 1
    assert "0: node " in log.getvalue() and "1: node " in log.getvalue(), "each node agent reports its node"
    assert (trace / "rank0.txt").read_text() and not (trace / "rank1.txt").exists(), "global rank 1 wrote"


def stop_two_nodes(spec: dict, tmp_path: Path, after: str, *, one_node: bool) -> str:
    """Launch 2 nodes x 1 process in a child and, once a line holds `after`, SIGTERM either every
    process of the job (a time limit) or one node's agent and ranks; returns the launch's output."""
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    pids = tmp_path / "node-pids"
    driver = ("import json; from bertflow.distributed import launch; "
              f"launch('bertflow.pretrain', json.load(open({str(tmp_path / 'spec.json')!r})), 1, cpu=True, "
              f"nodes=2, shared_dir={str(tmp_path / 'shared')!r})")
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "FAKE_SRUN_PIDS": str(pids)})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if after in line:
            os.killpg(int(pids.read_text().split()[1]) if one_node else proc.pid, signal.SIGTERM)
            break
    rest = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=120) != 0, rest[-3000:]
    return rest


def test_sigterm_to_every_process_of_two_nodes_then_a_relaunch_resumes_bit_for_bit(tiny_run, fake_slurm, tmp_path):
    import torch

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    spec_whole, spec_killed = pretrain_spec(tiny_run, whole, 8), pretrain_spec(tiny_run, killed, 8)
    for spec in (spec_whole, spec_killed):
        spec["train"] = {**spec["train"], "epochs": 2}
    two_node_launch("bertflow.pretrain", spec_whole, tmp_path / "shared-whole", stream=io.StringIO())

    output = stop_two_nodes(spec_killed, tmp_path, after="epoch 1 step 10/", one_node=False)
    # torchrun prints no summary when its agent is signalled: the ranks' own lines say that they stopped.
    assert "stopped by signal 15" in output and "stopped at step" in output and "rerun to resume" in output, \
        output[-3000:]
    progress = torch.load(killed / "checkpoints/last.pt", weights_only=False)["progress"]
    assert progress["epoch"] == 0 and progress["global_step"] >= 10 and not (killed / "model").exists()

    log = io.StringIO()
    two_node_launch("bertflow.pretrain", spec_killed, tmp_path / "shared", stream=log)
    assert f"resumed from {killed / 'checkpoints/last.pt'}: epoch 1, step {progress['global_step']}" in log.getvalue()
    assert losses(killed) == losses(whole) and safetensors_bytes(killed) == safetensors_bytes(whole)


def test_sigterm_to_one_node_is_agreed_by_both(tiny_run, fake_slurm, tmp_path):
    """Only node 1's agent and rank get the signal; both ranks stop at the same step (a collective)
    and global rank 0, on the other node, writes the checkpoint."""
    import torch

    out = tmp_path / "one-signalled"
    spec = pretrain_spec(tiny_run, out, 8)
    spec["train"] = {**spec["train"], "epochs": 2}
    output = stop_two_nodes(spec, tmp_path, after="epoch 1 step 10/", one_node=True)
    stops = re.findall(r"rank (\d) stopped on request: stopped at step (\d+)", output)
    assert sorted(rank for rank, _ in stops) == ["0", "1"], output[-3000:]
    assert len({step for _, step in stops}) == 1, f"the ranks stopped at different steps: {stops}"
    progress = torch.load(out / "checkpoints/last.pt", weights_only=False)["progress"]
    assert progress["global_step"] == int(stops[0][1])


def test_workflow_refuses_several_nodes_without_slurm_before_any_job(tmp_path):
    from support.workflow import snakemake, write_config

    config = write_config(tmp_path / "two-nodes.yaml", pretrain={"nodes": 2})
    result = snakemake(tmp_path, "--", "results/pretrain/train_info.json", configfile=config, check=False)
    assert result.returncode != 0
    assert "pretrain.nodes is 2, but the 'local' executor" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists(), "a job ran before the check"
