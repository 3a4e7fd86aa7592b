"""Run a training stage in data-parallel processes (PyTorch DDP through `torchrun`), on one node
or on several nodes of a SLURM allocation.

A stage module exposes `python -m bertflow.<module> SPEC.json`, where SPEC.json holds the keyword
arguments of its stage function. With one process the function is simply called; on one node,
`torchrun --standalone --nproc_per_node N` starts N copies of that entry point. On K nodes,
`srun --nodes K --ntasks-per-node 1` starts one node agent per node (`python -m
bertflow.distributed node-agent`: this node's GPU and thread checks), which becomes a torchrun
agent; the agents meet through c10d rendezvous on the allocation's first node, at a port derived
from the job id. SPEC.json is then written beside the checkpoints (a shared file system that every
node reads), never in a node-local temporary folder.
Each copy builds an `accelerate.Accelerator`, which reads torchrun's RANK/WORLD_SIZE variables
and joins one process group: gloo on CPU, NCCL on GPUs (one GPU per process).
Only global rank 0 writes outputs (`is_main_process`).

Signals: SLURM sends SIGTERM to every process of a job step at its time limit (or `scancel
--signal=TERM`), so each rank sees it; when only this launcher gets one (Ctrl-C, `kill`), it is
passed on to torchrun or srun, which pass it to the ranks. Either way the ranks agree on a step,
checkpoint, and each logs "stopped on request: stopped at step ..." (`STOPPED`): those lines, not
torchrun's summary (which a signalled agent does not print), tell this launcher that the run
stopped and can resume.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

from .errors import PipelineError, ResourceError
from .io import read_json

log = logging.getLogger(__name__)


class LaunchError(PipelineError):
    """The distributed launch ended with a non-zero exit code (the ranks' log lines are above)."""


def rank() -> int:
    """This process' global rank (0 outside a distributed launch)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the one process that writes outputs (rank 0, or the only process)."""
    return rank() == 0


@dataclass(frozen=True)
class Rendezvous:
    """Where the torchrun agents of a multi-node launch meet (c10d): the head node's address and a
    port, and the run's id (the SLURM job id, so agents of another job never join)."""

    head: str
    port: int
    run_id: str

    @property
    def endpoint(self) -> str:
        return f"{self.head}:{self.port}"


# Rendezvous ports: one per job id within this range, away from torchrun's default 29500 that
# single-node launches use.
PORT_BASE, PORT_SPAN = 30000, 20000


def port_for_job(job_id: str) -> int:
    """A port derived from the job id: every agent of the job computes the same one, and two jobs
    that share a head node get different ones (unless their ids are PORT_SPAN apart)."""
    return PORT_BASE + int(job_id) % PORT_SPAN


def torchrun_command(module: str, spec_path: str, num_processes: int, rendezvous: Rendezvous | None = None,
                     nodes: int = 1) -> list[str]:
    """torchrun (through this interpreter, so the same environment): `--standalone` on one node,
    c10d rendezvous at `rendezvous` across `nodes` nodes."""
    if rendezvous is None:
        placement = ["--standalone", "--nnodes", "1"]
    else:
        placement = ["--nnodes", str(nodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", rendezvous.endpoint,
                     "--rdzv_id", rendezvous.run_id]
    return [sys.executable, "-m", "torch.distributed.run", *placement, "--nproc_per_node", str(num_processes),
            "-m", module, spec_path]


def launcher_command(module: str, spec_path: str, num_processes: int, *, nodes: int = 1,
                     rendezvous: Rendezvous | None = None, cpus_per_node: int | None = None,
                     cpu: bool = True) -> list[str]:
    """The launch: torchrun on this node, or (nodes > 1) srun with one node agent per node."""
    if nodes == 1:
        return torchrun_command(module, spec_path, num_processes)
    if rendezvous is None:
        raise LaunchError(f"{module}: a {nodes}-node launch needs a rendezvous (a SLURM allocation)")
    srun = ["srun", "--jobid", rendezvous.run_id, "--nodes", str(nodes), "--ntasks", str(nodes),
            "--ntasks-per-node", "1", "--kill-on-bad-exit=1", "--label"]
    if cpus_per_node:
        srun.append(f"--cpus-per-task={cpus_per_node}")
    return [*srun, *node_agent_command(torchrun_command(module, spec_path, num_processes, rendezvous, nodes),
                                       num_processes, cpu=cpu)]


def node_agent_command(torchrun: list[str], num_processes: int, *, cpu: bool) -> list[str]:
    """What runs once per node: this node's checks, then `torchrun` in its place (exec)."""
    return [sys.executable, "-m", "bertflow.distributed", "node-agent", str(num_processes), "cpu" if cpu else "gpu",
            "--", *torchrun]


def node_agent(argv: list[str]) -> int:
    """`python -m bertflow.distributed node-agent N cpu|gpu -- TORCHRUN...`: check that this node
    can run N processes (a GPU each), give each its share of this node's CPUs, become torchrun."""
    num_processes, kind, torchrun = int(argv[0]), argv[1], argv[argv.index("--") + 1:]
    host = node_name()
    try:
        check_processes(num_processes, kind == "cpu", where=f"node {host}")
    except ResourceError as err:
        print(f"ResourceError: {err}", file=sys.stderr, flush=True)
        return 2
    threads = threads_per_process(num_processes, available_cpus())
    print(f"node {host}: {num_processes} {kind.upper()} process(es), {threads} thread(s) each", flush=True)
    os.execve(torchrun[0], torchrun, {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"})


def node_name() -> str:
    """This node's name: SLURM's (srun sets SLURMD_NODENAME in each task), else the host name."""
    return os.environ.get("SLURMD_NODENAME") or os.uname().nodename


def available_cpus() -> int:
    """CPUs this task was given: the ones it may run on (where SLURM binds tasks to CPUs), and no
    more than srun's --cpus-per-task (SLURM_CPUS_PER_TASK; sites without binding)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, int(os.environ.get("SLURM_CPUS_PER_TASK") or cpus))


def check_processes(num_processes: int, cpu: bool, *, where: str = "this node") -> None:
    """Fail before starting anything when N processes (per node) cannot get a GPU each."""
    if num_processes < 1:
        raise ResourceError(f"num_processes must be at least 1, got {num_processes}")
    if cpu or num_processes == 1:
        return
    import torch

    visible = torch.cuda.device_count()
    if visible < num_processes:
        raise ResourceError(
            f"{num_processes} GPU processes requested on {where} but {visible} GPU(s) visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            "lower pretrain.num_processes / finetune.num_processes (processes per node), ask SLURM for as many "
            "GPUs per node (resources gpu, or gres on several nodes), or set device: cpu"
        )


def threads_per_process(num_processes: int, cpus: int | None = None) -> int:
    """Split one node's CPUs (default: this stage's torch thread count) between its processes."""
    if cpus is None:
        import torch

        cpus = torch.get_num_threads()
    return max(1, cpus // num_processes)


def slurm_resources(nodes: int, num_processes: int, gpus_per_node: int) -> dict:
    """A training rule's resources, in the form the SLURM executor plugin turns into an allocation.

    One node: `gpu` (the plugin's job-wide `--gpus=N`). Several: `--nodes=K --ntasks=K` with
    `mpi` set, so the plugin runs the stage in the batch shell and the stage calls `srun` itself
    (without `mpi` the plugin's `srun -n1` keeps it on one node); GPUs per node through `gres`
    (`--gres=gpu:N`, which SLURM counts per node; `gpu` would be job-wide); `tasks_per_gpu: 0` keeps
    the plugin from turning `tasks` into `--ntasks-per-gpu`; one task per node holds the node's
    CPUs (the rule's threads), which its torchrun agent splits between the node's processes.
    """
    if nodes == 1:
        return {"gpu": gpus_per_node}
    resources = {"nodes": nodes, "tasks": nodes, "mpi": "srun", "cpus_per_task": lambda wildcards, threads: threads}
    if gpus_per_node:
        resources.update(gres=f"gpu:{gpus_per_node}", tasks_per_gpu=0)
    return resources


def slurm_rendezvous(job_id: str | None = None) -> Rendezvous:
    """The rendezvous of a multi-node launch inside SLURM job `job_id` (default: this job): the
    address of the allocation's first node, a port from the job id.

    The node list comes from `scontrol`, not from SLURM_JOB_NODELIST: Snakemake's job step
    removes SLURM's node variables from a stage's environment.
    """
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        raise LaunchError("a multi-node launch runs inside a SLURM job (SLURM_JOB_ID is not set): submit it "
                          "through the SLURM executor (snakemake --workflow-profile profiles/slurm), or set "
                          "pretrain.nodes: 1")
    nodelist = _scontrol_field(["show", "job", "-o", job_id], "NodeList")
    head = _scontrol(["show", "hostnames", nodelist]).split()[0]
    return Rendezvous(head=_scontrol_field(["show", "node", "-o", head], "NodeAddr"), port=port_for_job(job_id),
                      run_id=job_id)


def slurm_cpus_per_task(job_id: str) -> int:
    """The CPUs SLURM allocated per task of the job (one task per node: the node's CPUs), for the
    srun step. Not the stage's thread count: inside the job, Snakemake counts the node's cores."""
    return int(_scontrol_field(["show", "job", "-o", job_id], "CPUs/Task"))


def _scontrol(args: list[str]) -> str:
    try:
        return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise LaunchError(f"scontrol {' '.join(args)} failed: {getattr(err, 'stderr', '') or err}") from err


def _scontrol_field(args: list[str], field: str) -> str:
    """One `Key=value` of scontrol's one-line output."""
    match = re.search(rf"(?:^|\s){field}=(\S+)", _scontrol(args))
    if match is None:
        raise LaunchError(f"scontrol {' '.join(args)}: no {field}")
    return match.group(1)


@contextmanager
def spec_file(spec: dict, shared_dir: str | None) -> Iterator[Path]:
    """SPEC.json for the launched processes, removed after the launch: in `shared_dir` (a folder
    every node reads, beside the checkpoints) when given, else in a temporary folder of this node."""
    if shared_dir is None:
        with tempfile.TemporaryDirectory(prefix="bertflow-launch-") as tmp:
            path = Path(tmp, "SPEC.json")
            path.write_text(json.dumps(spec))
            yield path
        return
    path = Path(shared_dir, "SPEC.json").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def launch(module: str, spec: dict, num_processes: int, *, cpu: bool, stream: TextIO | None = None,
           nodes: int = 1, shared_dir: str | None = None, cpus_per_node: int | None = None) -> None:
    """Run `python -m MODULE SPEC.json` in `num_processes` processes on each of `nodes` nodes and wait.

    `spec` (JSON-serialisable keyword arguments of the stage function) goes to SPEC.json in
    `shared_dir` (required for nodes > 1: every node reads it) or a temporary folder; the processes'
    output is copied line by line to `stream` (default: sys.stdout, which is the rule's log inside
    `bertflow.stage.stage`), and they inherit this process's environment (inside `stage()`:
    offline, progress bars off). Raises LaunchError with the exit code on failure.
    """
    if nodes > 1 and shared_dir is None:
        raise LaunchError(f"{module}: a {nodes}-node launch needs a shared folder for SPEC.json (shared_dir)")
    rendezvous = slurm_rendezvous() if nodes > 1 else None
    if nodes == 1:
        check_processes(num_processes, cpu)  # on several nodes each node agent checks its own
    else:
        cpus_per_node = cpus_per_node or slurm_cpus_per_task(rendezvous.run_id)
    stream = stream or sys.stdout
    world = nodes * num_processes
    with spec_file(spec, shared_dir) as spec_path:
        command = launcher_command(module, str(spec_path), num_processes, nodes=nodes, rendezvous=rendezvous,
                                   cpus_per_node=cpus_per_node, cpu=cpu)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process(num_processes)), "PYTHONUNBUFFERED": "1"}
        log.info("launching %d %s processes (%d node(s) x %d): %s", world, "CPU (gloo)" if cpu else "GPU (NCCL)",
                 nodes, num_processes, " ".join(command))
        stream.flush()
        outcome = run_forwarding_signals(command, env, stream)
    if outcome.returncode == 0:
        return
    if outcome.stopped:
        received = f"signal {outcome.signals[0]}" if outcome.signals else "SIGTERM"
        raise LaunchError(f"{module}: the {world}-process run was stopped by {received} (a time limit or a "
                          f"cancel): {outcome.stopped[0]}; rerun to resume (the stage continues from its last "
                          "checkpoint)")
    if outcome.signals:
        raise LaunchError(f"{module}: the {world}-process run got signal {outcome.signals[0]} and no rank reported "
                          "a checkpoint; rerun to resume from the last one, if any")
    cause = f"first error: {outcome.errors[0]}" if outcome.errors else "their errors are in the log above"
    raise LaunchError(
        f"{module}: the {world}-process launch failed: {command[0].rsplit('/', 1)[-1]} exit code "
        f"{outcome.returncode}, failed ranks' exit codes {outcome.rank_codes or 'unknown'}; {cause}"
    )


def spec_main(function: Callable, *, exit_codes: dict[type, int] | None = None) -> Callable[[list[str] | None], int]:
    """The `main(argv)` of a stage module: `python -m MODULE SPEC.json`, what `launch` starts in each
    process, calls `function(**SPEC)`.

    `exit_codes` maps exceptions that end a stage on purpose to exit codes (pretraining's
    StopRequested after a SIGTERM checkpoint -> 143, which the launcher reports as such).
    """
    return functools.partial(_run_spec, function, exit_codes=exit_codes or {})


def _run_spec(function: Callable, argv: list[str] | None = None, *, exit_codes: dict[type, int]) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {function.__module__} SPEC.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    expected = tuple(exit_codes)
    try:
        function(**read_json(argv[0]))
    except expected as stop:
        log.warning("rank %d %s %s", rank(), STOPPED, stop)
        close_process_group(synchronize=False)
        return exit_codes[type(stop)]
    except BaseException:
        close_process_group(synchronize=False)
        raise
    close_process_group()
    return 0


def close_process_group(*, synchronize: bool = True) -> None:
    """End this rank's part in the process group before the interpreter exits.

    A rank that exits with the group still open can abort ("terminate called without an active
    exception": gloo's threads are torn down mid-flight), turning a success, or a failure's own
    exit code, into SIGABRT. `synchronize`: wait for every rank first (only on success: a failing
    rank cannot count on the others reaching the barrier).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()  # no rank leaves while another still talks to it
        dist.destroy_process_group()


def run(function: Callable, spec: dict, num_processes: int, *, nodes: int = 1, shared_dir: str | None = None,
        cpus_per_node: int | None = None) -> None:
    """Call `function(**spec)` in this process, or launch its module's entry point in N processes on
    each of `nodes` nodes (gloo when `spec["device"]` resolves to the CPU, NCCL otherwise)."""
    if num_processes == 1 and nodes == 1:
        function(**spec)
    else:
        from .runtime import resolve_device

        launch(function.__module__, spec, num_processes, cpu=resolve_device(spec["device"]) == "cpu", nodes=nodes,
               shared_dir=shared_dir, cpus_per_node=cpus_per_node)


# What a rank logs when it stopped on purpose (a signal) after checkpointing: "rank 3 stopped on
# request: stopped at step 120; checkpoint ...". srun prefixes "0: " (--label), logging a time.
STOPPED = "stopped on request:"
_STOPPED_LINE = re.compile(rf"rank \d+ {STOPPED} (.*)$")
# torchrun's failure summary names each failed rank's exit code: "  exitcode  : 143 (pid: ...)".
_EXITCODE = re.compile(r"^(?:\d+: )?\s*exitcode\s*:\s*(-?\d+)")
# The last line of a rank's traceback, "ValueError: ..." (torch may prefix "[rank1]:"); torchrun's own
# ChildFailedError, which only says that a child failed, is not the cause.
_EXCEPTION = re.compile(r"^(?:\d+: )?(?:\[rank\d+\]:\s*)?((?:\w+\.)*(?!ChildFailedError)\w*(?:Error|Exception)\b(?::.*)?)$")


@dataclass
class Outcome:
    """How a launch ended: its exit code, the failed ranks' exit codes (torchrun's summary), the
    signals this process received (and passed on), the ranks' exception lines and their
    "stopped on request" lines."""

    returncode: int
    rank_codes: list[int]
    signals: list[int]
    errors: list[str]
    stopped: list[str]


def run_forwarding_signals(command: list[str], env: dict, stream: TextIO) -> Outcome:
    """Run `command`, copying its output to `stream` and reading what the ranks report in it."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    signals = []

    def forward(signum, _frame):
        log.warning("received signal %d: passing it to the %s processes", signum, command[2])
        signals.append(signum)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    rank_codes, errors, stopped = [], [], []
    try:
        for line in proc.stdout:
            stream.write(line)
            stream.flush()
            if match := _STOPPED_LINE.search(line.rstrip()):
                stopped.append(match.group(1))
            elif match := _EXITCODE.match(line):
                rank_codes.append(int(match.group(1)))
            elif match := _EXCEPTION.match(line.rstrip()):
                errors.append(match.group(1))
        return Outcome(proc.wait(), rank_codes, signals, errors, stopped)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    if sys.argv[1:2] != ["node-agent"]:
        sys.exit("usage: python -m bertflow.distributed node-agent N cpu|gpu -- TORCHRUN...")
    sys.exit(node_agent(sys.argv[2:]))
