"""What the sweeps share (`size_sweep`, `finetune_sweep`): the config a workflow run sees, one stage
run per setting in a fresh process, reruns that skip what is finished, and the results files.

Each setting runs its stage's own entry point, `python -m bertflow.<stage> SPEC.json` (the one a
distributed launcher starts), in a fresh process, with the stage's environment (offline, no
progress bars) and its output in FOLDER/stage.log. A setting is finished when the stage's last
output exists and FOLDER/spec.json holds the same settings; a rerun skips it. A SIGTERM (a device
call's time limit, `timeout`) is passed on to the running stage, which checkpoints at its next
step, and the sweep stops with exit code 143: rerun the same command to go on (the stage resumes).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bertflow.distributed import run_forwarding_signals
from bertflow.errors import ConfigError, PipelineError
from bertflow.io import read_json, write_json, write_text

STOPPED_EXIT_CODE = 143  # a stage stopped by SIGTERM (its StopRequested, after a checkpoint)
SPEC_FILE, LOG_FILE, ATTEMPTS_FILE = "spec.json", "stage.log", "attempts.jsonl"


# --------------------------------------------------------------------------- settings


def workflow_config(config_file: str) -> dict:
    """The config a `snakemake --configfile CONFIG_FILE` run sees, checked as the workflow's start."""
    from bertflow.checks import workflow_config as checked_workflow_config

    return checked_workflow_config([config_file])


def seed_for(config: dict, section: str) -> int:
    """A stage's seed as the workflow picks it: the section's own, else the global one."""
    own = config[section].get("seed")
    return config["seed"] if own is None else own


def json_or_text(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def key_values(items: list[str], allowed: list[str], flag: str) -> dict:
    """`KEY=VALUE` items (JSON values, else strings) with each KEY one of `allowed`."""
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in allowed or not value:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE with KEY one of {', '.join(allowed)}")
        options[key] = json_or_text(value)
    return options


def grid_points(axes: dict[str, list]) -> list[dict]:
    """Every combination of the axes' values, the first axis varying slowest."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def require_dirs(**folders: str) -> None:
    """A ConfigError naming each missing input folder, before any compute starts."""
    missing = [f"--{flag.replace('_', '-')} {path}" for flag, path in folders.items() if not Path(path).is_dir()]
    if missing:
        raise ConfigError(f"not found: {', '.join(missing)} (run the workflow's stages that make them first, "
                          "or point the option at them)")


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One setting of a sweep: the stage module, its keyword arguments and its folder."""

    name: str
    module: str  # runs as `python -m MODULE SPEC.json`
    spec: dict
    folder: Path
    done_file: str  # the stage's last output: its presence means the run is complete

    def finished(self) -> bool:
        spec_file = self.folder / SPEC_FILE
        return (self.folder / self.done_file).is_file() and spec_file.is_file() and read_json(spec_file) == self.spec

    def attempts(self) -> list[dict]:
        path = self.folder / ATTEMPTS_FILE
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def stage_environment() -> dict:
    """What `bertflow.stage.stage` sets for a rule's job: offline, no progress bars."""
    from bertflow.stage import OFFLINE_ENV, QUIET_ENV

    return {**os.environ, **OFFLINE_ENV, **QUIET_ENV, "PYTHONUNBUFFERED": "1"}


def execute(run: Run) -> tuple[int, list[int]]:
    """Run the stage once in a fresh process; record the attempt. Returns (exit code, signals received)."""
    run.folder.mkdir(parents=True, exist_ok=True)
    spec_file = run.folder / SPEC_FILE
    if spec_file.is_file() and read_json(spec_file) != run.spec:  # other settings: their result is not this run's
        (run.folder / run.done_file).unlink(missing_ok=True)
        (run.folder / ATTEMPTS_FILE).unlink(missing_ok=True)
    write_json(spec_file, run.spec)
    started, started_utc = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(run.folder / LOG_FILE, "a", encoding="utf-8") as stream:
        stream.write(f"--- {started_utc}: python -m {run.module} {spec_file}\n")
        stream.flush()
        outcome = run_forwarding_signals([sys.executable, "-m", run.module, str(spec_file)],
                                         stage_environment(), stream)
    code, signals = outcome.returncode, outcome.signals
    attempt = {"started_utc": started_utc, "wall_s": round(time.perf_counter() - started, 3), "exit_code": code,
               "signals": signals}
    with open(run.folder / ATTEMPTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(attempt) + "\n")
    return code, signals


def log_tail(run: Run, lines: int = 25) -> str:
    return "\n".join((run.folder / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def run_all(runs: list[Run], after_each, *, keep_models: bool = False) -> int:
    """Each run that is not finished, in order, calling `after_each()` once a run ends (to rewrite
    the results). Stops at a run stopped by a signal (exit 143); a failed run does not stop the others.
    A run's `model` folder is removed after it unless `keep_models` (weights are not results)."""
    failures, received = 0, []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}  # between runs: stop before the next one
    try:
        for run in runs:
            if received:
                print(f"  signal {received[0]} received: stopped before {run.name}", flush=True)
                return STOPPED_EXIT_CODE
            code = run_one(run, after_each, keep_models)
            if code == STOPPED_EXIT_CODE:
                return code
            failures += code != 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failures else 0


def run_one(run: Run, after_each, keep_models: bool) -> int:
    """0 (done, or finished earlier), 143 (stopped by a signal) or the failed stage's exit code."""
    if run.finished():
        print(f"  {run.name}: finished earlier, skipped", flush=True)
        return 0
    print(f"  {run.name}: running (log: {run.folder / LOG_FILE})", flush=True)
    code, signals = execute(run)
    if not keep_models:
        shutil.rmtree(run.folder / "model", ignore_errors=True)
    after_each()
    if signals or code in (STOPPED_EXIT_CODE, -signal.SIGTERM):
        print(f"  {run.name}: stopped (exit {code}); rerun the same command to go on", flush=True)
        return STOPPED_EXIT_CODE
    if code != 0:
        print(f"  {run.name}: FAILED (exit {code}); the end of its log:\n{log_tail(run)}", flush=True)
    return code


# --------------------------------------------------------------------------- results


def write_results(out: Path, name: str, payload: dict, markdown: list[str]) -> list[str]:
    """OUT/NAME.json (everything) and OUT/NAME.md (the table); returns the table's lines."""
    write_json(out / f"{name}.json", payload)
    write_text(out / f"{name}.md", "\n".join(markdown) + "\n")
    return markdown


def sweep_main(prepare, argv: list[str] | None) -> int:
    """A sweep command: `prepare(argv)` -> (runs, write, out folder, keep models?) checks every input
    (a bad one: one line, exit 2, before any compute); then the runs, the results rewritten by
    `write()` after each, and the table printed."""
    try:
        runs, write, out, keep_models = prepare(argv)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs -> {out}", flush=True)
    code = run_all(runs, write, keep_models=keep_models)
    print("\n" + "\n".join(write()), flush=True)
    print(f"\nwritten to {out}")
    return code


def device_name(environment: dict, device: str) -> str:
    """The GPU's name from a stage's environment record, else the device ('cpu')."""
    return environment.get("device", {}).get("gpu") or device
