"""The tiny pipeline on a real SLURM cluster through the SLURM executor plugin.

tests/slurm/cluster.sh starts slurmctld and two slurmd on this host (two nodes; one where SLURM
lacks --enable-multiple-slurmd), no systemd, no accounting; Snakemake runs with
the test profile tests/slurm/profile (profiles/slurm sized for this node), with the compute nodes'
air-gapped settings (HF_*_OFFLINE, no reachable proxy). Every compute stage must run as its own
SLURM job, in the partition the profile takes from BERTFLOW_SLURM_PARTITION, and produce what the
local run (the shared `tiny_run`) produces. Pretraining with `pretrain.nodes: 2` runs as one job
on both nodes (srun + torchrun c10d), is stopped by `scancel --signal=TERM` and resumed by
Snakemake's retry, and ends with the weights of the same run launched locally on one node.

Skipped only when SLURM is not installed or cannot start here (CI installs it: .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support.workflow import REPO, SNAKEMAKE, TINY_CONFIG
from test_offline import AIR_GAPPED

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
TEST_PROFILE = REPO / "tests" / "slurm" / "profile"
PARTITION = "bertflow"  # the test cluster's non-default partition
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """SLURM_CONF of a two-node test cluster, else of a one-node one (`two_nodes_skipped` says why)."""
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "munged") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing): run `tests/slurm/cluster.sh install` as root")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(CLUSTER), "start", str(state), "2"], capture_output=True, text=True)
    two_nodes_skipped = None
    if started.returncode != 0:
        two_nodes_skipped = f"a two-node SLURM cluster could not be started here: {started.stderr.strip()[-800:]}"
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, text=True)
        started = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"a single-node SLURM cluster could not be started here: {started.stderr.strip()[-800:]}")
    env = {"SLURM_CONF": str(state / "slurm.conf")}
    yield env, two_nodes_skipped
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, text=True)


@pytest.fixture(scope="session")
def slurm_run(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_run")
    env = {**os.environ, **slurm_cluster[0], **AIR_GAPPED, "BERTFLOW_SLURM_PARTITION": PARTITION}
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", str(TEST_PROFILE), "--configfile", str(TINY_CONFIG)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"snakemake on SLURM failed ({result.returncode}):\n{output[-8000:]}"
    return workdir, output, slurm_cluster[0]


def slurm_jobs(output: str) -> dict[str, tuple[str, Path]]:
    """SLURM job id -> (rule, SLURM log) from Snakemake's submission lines."""
    jobs = {}
    for jobid, log in SUBMITTED.findall(output):
        rule = re.search(r"slurm_logs/rule_([^/]+)/", log).group(1)
        jobs[jobid] = (rule, Path(log))
    return jobs


def planned_rules(output: str) -> set[str]:
    """Rules in Snakemake's job-stats table at the start of the run."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.split()}


def local_rules(output: str) -> set[str]:
    """Rules Snakemake ran on the submitting host (`localrules`, and `all`)."""
    return set(re.findall(r"^localrule (\w+):", output, re.M))


@pytest.mark.slow
def test_every_compute_stage_ran_as_a_slurm_job(slurm_run):
    workdir, output, env = slurm_run
    jobs = slurm_jobs(output)
    ran_on_slurm = {rule for rule, _ in jobs.values()}
    compute_rules = planned_rules(output) - local_rules(output)
    assert {"prepare_corpus", "train_tokenizer", "tokenize_corpus", "pretrain", "finetune"} <= compute_rules
    assert ran_on_slurm == compute_rules, f"not submitted to SLURM: {compute_rules - ran_on_slurm}"
    assert {"upload", "all"} <= local_rules(output), "local rules (network) must run on the submitting host"

    # SLURM itself knows each job: finished, in the partition the profile read from the environment.
    squeue = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i %P %T"],
                            capture_output=True, text=True, env={**os.environ, **env}, check=True).stdout
    states = {line.split()[0]: line.split()[1:] for line in squeue.splitlines()}
    for jobid, (rule, log) in jobs.items():
        assert states.get(jobid) == [PARTITION, "COMPLETED"], (rule, jobid, states.get(jobid))
        text = log.read_text()
        assert f"rule {rule}:" in text or f"rule {rule}\n" in text, f"{log} does not show rule {rule}"


@pytest.mark.slow
def test_slurm_run_produces_the_local_outputs(slurm_run, tiny_run):
    """Same files; byte-identical data, tokenizer and blocks; the same training schedule. Training
    runs on other CPUs with another thread count, so its numbers are compared within a band."""
    workdir, _, _ = slurm_run
    # Not outputs: logs, timings and TensorBoard events (named by time, host and pid).
    ignore = {"logs", "benchmarks", "tensorboard"}

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in (root / "results").rglob("*")
                if p.is_file() and not ignore & set(p.relative_to(root / "results").parts)}

    assert files(workdir) == files(tiny_run)
    for name in ("corpus/train.txt", "corpus/validation.txt", "data/sst2/train.tsv", "data/sst2/validation.tsv",
                 "data/squad/train.json", "data/squad/validation.json", "tokenizer/tokenizer.json",
                 "blocks/train.bin", "blocks/validation.bin"):
        assert (workdir / "results" / name).read_bytes() == (tiny_run / "results" / name).read_bytes(), name

    def load(root, name):
        return json.loads((root / "results" / name).read_text())

    info_slurm, info_local = load(workdir, "pretrain/train_info.json"), load(tiny_run, "pretrain/train_info.json")
    for key in ("steps", "epochs", "tokens_seen", "parameters", "processes", "settings"):
        assert info_slurm[key] == info_local[key], key
    # The SLURM jobs run with 1 thread, the local
    # run with 2, and the tiny model gave the same perplexity to 14 digits with both (102.938), so
    # 1 % only leaves room for other CPUs' reduction order.
    assert abs(info_slurm["final_perplexity"] - info_local["final_perplexity"]) <= 0.01 * info_local["final_perplexity"]

    for task, keys in (("sst2", ("examples", "parameters")), ("squad", ("questions", "parameters"))):
        m_slurm = load(workdir, f"finetune/{task}/pretrained/seed1/metrics.json")
        m_local = load(tiny_run, f"finetune/{task}/pretrained/seed1/metrics.json")
        for key in keys:
            assert m_slurm[key] == m_local[key], (task, key)
        assert len(m_slurm["epochs"]) == len(m_local["epochs"])
    assert load(workdir, "finetune/sst2/pretrained/seed1/metrics.json")["accuracy"] > 60.0
    assert (workdir / "results/report.md").read_text().count("\n") > 10


def test_slurm_profiles_parse_and_size_the_gpu_stages(tmp_path):
    """profiles/slurm: the rules it names exist; GPU stages get CPUs per GPU, memory and time;
    Snakemake accepts it (a dry run of the default workflow with it)."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(profile["default-resources"])
    rules = set(subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--list-rules"], capture_output=True,
                               text=True, cwd=tmp_path, check=True).stdout.split())
    assert set(profile["set-resources"]) <= rules and set(profile["set-threads"]) <= rules
    for gpu_rule in ("pretrain", "finetune"):
        assert {"cpus_per_gpu", "mem_mb", "runtime"} <= set(profile["set-resources"][gpu_rule])
    # GPU counts come from the rules (num_processes), not from fixed numbers in the profile.
    assert not any("gpu" in resources for resources in profile["set-resources"].values())
    test_profile = yaml.safe_load((TEST_PROFILE / "config.yaml").read_text())
    assert test_profile["executor"] == "slurm" and test_profile["slurm-status-command"] == "squeue"

    dry = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--workflow-profile", str(REPO / "profiles/slurm"),
                          "--configfile", str(TINY_CONFIG), "--dry-run"], capture_output=True, text=True, cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert "pretrain" in dry.stdout


@pytest.mark.slow
def test_two_node_pretraining_stops_resumes_and_equals_the_one_node_launch(slurm_cluster, tiny_run, tmp_path):
    """`pretrain.nodes: 2` through the workflow profile: one SLURM job on both nodes (srun starts a
    torchrun agent per node). `scancel --signal=TERM` (what a time limit sends) stops it at a
    checkpoint; Snakemake's retry resumes; the weights equal a local one-node launch of the same
    world size (2 processes) byte for byte. Tokenizer and blocks come from the local run, so that
    only pretraining differs."""
    slurm_env, two_nodes_skipped = slurm_cluster
    if two_nodes_skipped:
        pytest.skip(two_nodes_skipped)
    from support.workflow import snakemake, write_config

    local, remote = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local, remote):
        shutil.copytree(tiny_run, workdir, symlinks=True)
        (workdir / "results/logs/pretrain.log").unlink()  # the local run's lines must not count
    train = {"epochs": 2, "batch_size": 8}
    snakemake(local, "--", "results/pretrain/train_info.json",
              configfile=write_config(tmp_path / "local.yaml", pretrain={**train, "num_processes": 2}))

    config = write_config(tmp_path / "two-nodes.yaml", pretrain={**train, "nodes": 2, "num_processes": 1})
    env = {**os.environ, **slurm_env, **AIR_GAPPED, "BERTFLOW_SLURM_PARTITION": PARTITION}
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(remote), "--workflow-profile",
           str(TEST_PROFILE), "--configfile", str(config), "--", "results/pretrain/train_info.json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output, cancelled = [], None
    stage_log = remote / "results/logs/pretrain.log"
    for line in proc.stdout:
        output.append(line)
        if cancelled is None and (jobs := [j for j, (rule, _) in slurm_jobs(line).items() if rule == "pretrain"]):
            jobid, = jobs
            cancelled = jobid
            wait_for_line(stage_log, "epoch 1 step 10/", proc)
            subprocess.run(["scancel", "--signal=TERM", jobid], env=env, check=True)
    output = "".join(output)
    assert proc.wait(timeout=600) == 0, output[-8000:]

    pretrain_jobs = [jobid for jobid, (rule, _) in slurm_jobs(output).items() if rule == "pretrain"]
    assert len(pretrain_jobs) == 2 and pretrain_jobs[0] == cancelled, output[-4000:]
    # The first job's log (shown by Snakemake when it failed): both nodes, both ranks stopped.
    assert "node bertflow-node1:" in output and "node bertflow-node2:" in output, output[-6000:]
    assert len(set(re.findall(r"rank (\d) stopped on request: stopped at step", output))) == 2, output[-6000:]
    resumed = stage_log.read_text()
    assert "resumed from" in resumed and "node bertflow-node1:" in resumed and "node bertflow-node2:" in resumed

    info = json.loads((remote / "results/pretrain/train_info.json").read_text())
    assert (info["nodes"], info["processes_per_node"], info["processes"]) == (2, 1, 2)
    # Which host gets node rank 0 is the rendezvous's choice.
    nodes = info["environment"]["nodes"]
    assert [n["node_rank"] for n in nodes] == [0, 1]
    assert sorted(n["host"] for n in nodes) == ["bertflow-node1", "bertflow-node2"]
    ours, theirs = (root / "results/pretrain" for root in (remote, local))
    assert learning_curve(ours / "perplexity.csv") == learning_curve(theirs / "perplexity.csv")
    assert (ours / "model/model.safetensors").read_bytes() == (theirs / "model/model.safetensors").read_bytes()


def learning_curve(path: Path) -> list[tuple[str, ...]]:
    """The losses of each row, as written (not its speed or time)."""
    import csv

    keys = ("epoch", "step", "train_loss", "eval_loss", "perplexity")
    return [tuple(row[key] for key in keys) for row in csv.DictReader(open(path))]


def wait_for_line(path: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until `path` holds `text` (the job is training); fails if Snakemake ends first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text() if path.is_file() else ""
        if text in log:
            return
        assert "rule pretrain failed" not in log and proc.poll() is None, f"pretraining failed first:\n{log[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{path} had no {text!r} within {timeout} s")


def test_multinode_resources_become_a_multinode_sbatch_line():
    """What the SLURM plugin (2.8.0) submits for pretraining's resources on 2 nodes x 4 GPUs: every
    node, one task each with the node's CPUs, GPUs per node (GRES), not a job-wide --gpus."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    from bertflow.distributed import slurm_resources

    class Resources(dict):
        __getattr__ = dict.__getitem__

    resources = slurm_resources(2, 4, 4)
    resources["cpus_per_task"] = resources["cpus_per_task"](None, threads=32)
    job = SimpleNamespace(resources=Resources(resources, mem_mb=64000, runtime=720), threads=32)
    params = dict(run_uuid="u", slurm_logfile="l", comment_str="c", account="", partition="", workdir="")
    sbatch = (get_submit_command(job, params) + set_gres_string(job)).split()
    assert {"--nodes=2", "--ntasks=2", "--cpus-per-task=32", "--gres=gpu:4"} <= set(sbatch), sbatch
    assert not any(arg.startswith(("--gpus", "--ntasks-per-gpu", "--cpus-per-gpu")) for arg in sbatch), sbatch
