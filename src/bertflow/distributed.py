"""Run a training stage in N data-parallel processes (PyTorch DDP through `torchrun`).

A stage module exposes `python -m bertflow.<module> SPEC.json`, where SPEC.json holds the keyword
arguments of its stage function. With one process the function is simply called; with more,
`torchrun --standalone --nproc_per_node N` starts N copies of that entry point on this node.
Each copy builds an `accelerate.Accelerator`, which reads torchrun's RANK/WORLD_SIZE variables
and joins one process group: gloo on CPU, NCCL on GPUs (one GPU per process).
Only rank 0 writes outputs (`is_main_process`).

Signals: SLURM sends SIGTERM to every process of a job at its time limit, so each rank sees it;
when only this launcher gets one (Ctrl-C, `kill`), it is passed on to torchrun, which passes it
to the ranks. Either way the stage checkpoints and the launch fails with the ranks' exit code.
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
from pathlib import Path
from typing import Callable, TextIO

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


def launcher_command(module: str, spec_path: str, num_processes: int) -> list[str]:
    """`torchrun --standalone` (run through this interpreter, so the same environment) for one node."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", "--nnodes", "1", "--nproc_per_node", str(num_processes),
        "-m", module, spec_path,
    ]


def check_processes(num_processes: int, cpu: bool) -> None:
    """Fail before starting anything when N processes cannot get a GPU each."""
    if num_processes < 1:
        raise ResourceError(f"num_processes must be at least 1, got {num_processes}")
    if cpu or num_processes == 1:
        return
    import torch

    visible = torch.cuda.device_count()
    if visible < num_processes:
        raise ResourceError(
            f"{num_processes} GPU processes requested but {visible} GPU(s) visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            "lower pretrain.num_processes / finetune.num_processes, ask SLURM for as many GPUs (resources gpu), "
            "or set device: cpu"
        )


def threads_per_process(num_processes: int) -> int:
    """Split the CPUs this stage was given (its torch thread count) between the processes."""
    import torch

    return max(1, torch.get_num_threads() // num_processes)


def launch(module: str, spec: dict, num_processes: int, *, cpu: bool, stream: TextIO | None = None) -> None:
    """Run `python -m MODULE SPEC.json` in `num_processes` processes on this node and wait.

    `spec` (JSON-serialisable keyword arguments of the stage function) goes to a temporary file;
    the processes' output is copied line by line to `stream` (default: sys.stdout, which is the
    rule's log inside `bertflow.stage.stage`), and they inherit this process's environment (inside
    `stage()`: offline, progress bars off). Raises LaunchError with the exit code on failure.
    """
    check_processes(num_processes, cpu)
    stream = stream or sys.stdout
    with tempfile.TemporaryDirectory(prefix="bertflow-launch-") as tmp:
        spec_path = Path(tmp, "spec.json")
        spec_path.write_text(json.dumps(spec))
        command = launcher_command(module, str(spec_path), num_processes)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process(num_processes)), "PYTHONUNBUFFERED": "1"}
        log.info("launching %d %s processes: %s", num_processes, "CPU (gloo)" if cpu else "GPU (NCCL)",
                 " ".join(command))
        stream.flush()
        returncode, rank_codes, signals, errors = run_forwarding_signals(command, env, stream)
    if returncode == 0:
        return
    if signals or 143 in rank_codes:
        # torchrun reports no rank exit codes when it was signalled itself (SLURM signals every
        # process of the job): the ranks got the signal too and checkpointed.
        received = f"signal {signals[0]}" if signals else "SIGTERM"
        raise LaunchError(f"{module}: the {num_processes}-process run was stopped by {received} "
                          "(a time limit or a cancel); rerun to resume (the stage continues from its last checkpoint)")
    cause = f"first error: {errors[0]}" if errors else "their errors are in the log above"
    raise LaunchError(
        f"{module}: the {num_processes}-process launch failed: torchrun exit code {returncode}, "
        f"failed ranks' exit codes {rank_codes or 'unknown'}; {cause}"
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
        log.warning("%s", stop)
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


def run(function: Callable, spec: dict, num_processes: int) -> None:
    """Call `function(**spec)` in this process, or launch its module's entry point in N processes
    (gloo when `spec["device"]` resolves to the CPU, NCCL otherwise)."""
    if num_processes == 1:
        function(**spec)
    else:
        from .runtime import resolve_device

        launch(function.__module__, spec, num_processes, cpu=resolve_device(spec["device"]) == "cpu")


# torchrun's failure summary names each failed rank's exit code: "  exitcode  : 143 (pid: ...)".
_EXITCODE = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")
# The last line of a rank's traceback, "ValueError: ..." (torch may prefix "[rank1]:"); torchrun's own
# ChildFailedError, which only says that a child failed, is not the cause.
_EXCEPTION = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:\w+\.)*(?!ChildFailedError)\w*(?:Error|Exception)\b(?::.*)?)$")


def run_forwarding_signals(command: list[str], env: dict, stream: TextIO) -> tuple[int, list[int], list[int], list[str]]:
    """Run `command`, copying its output to `stream`; returns its exit code, the ranks' failed
    ones, the signals this process received (and passed on) and the ranks' exception lines."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    signals = []

    def forward(signum, _frame):
        log.warning("received signal %d: passing it to the %s processes", signum, command[2])
        signals.append(signum)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    rank_codes, errors = [], []
    try:
        for line in proc.stdout:
            stream.write(line)
            stream.flush()
            if match := _EXITCODE.match(line):
                rank_codes.append(int(match.group(1)))
            elif match := _EXCEPTION.match(line.rstrip()):
                errors.append(match.group(1))
        return proc.wait(), rank_codes, signals, errors
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
