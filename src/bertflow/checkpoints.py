"""Checkpoints that let a training stage (pretraining, fine-tuning) survive interruption.

A checkpoint is one file, written atomically, loaded with `weights_only=True` and tagged with a
fingerprint of what it was trained on: one made with other settings or data, or one that cannot be
read, is set aside (kept, never deleted) and training starts fresh. SIGTERM (SLURM's time limit,
a deadline under `timeout`) and SIGINT become a flag the loop checks between steps; the stage then
checkpoints and raises StopRequested, which its entry point turns into exit code 143.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import torch

from .io import disk_full_guard

log = logging.getLogger(__name__)

# The layout of a training checkpoint's progress record (bertflow.training.Progress and a stage's
# fields). Version 2 is the record both stages share; a checkpoint of another layout (version 1
# had a record per stage) is set aside and training starts fresh.
PROGRESS_FORMAT = 2


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        with disk_full_guard(path, "the checkpoint"):
            torch.save(state, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)  # gives the space back; the previous checkpoint stays
        raise
    os.replace(tmp, path)  # atomic: a kill during the save keeps the previous checkpoint


def stale_dir(checkpoint_path: Path) -> Path:
    """Where set-aside checkpoints go: next to the checkpoint folder, which a finished run removes."""
    return checkpoint_path.parent.parent / "stale-checkpoints"


def set_aside(path: Path, why: str) -> Path:
    """Move a checkpoint we will not resume from out of the way (kept, never deleted)."""
    target = stale_dir(path) / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    log.warning("checkpoint %s %s; kept as %s (delete it when not needed), starting fresh", path, why, target)
    return target


def load_checkpoint(path: Path, expected_fingerprint: str, *, is_main: bool = True,
                    progress_format: int | None = None) -> dict | None:
    """The checkpoint's state, or None (no file; a corrupt one, one of other settings or, given
    `progress_format`, one whose progress record has another layout is set aside).

    `weights_only=True`: a checkpoint holds tensors and plain Python values only, so loading one
    cannot run code from whatever sits in results/.
    """
    leftover = path.with_suffix(".tmp")
    if is_main and leftover.exists():
        log.warning("removing %s, a checkpoint write that did not finish (full disk or a kill)", leftover)
        leftover.unlink(missing_ok=True)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, foreign object: never resume from it
        if is_main:
            set_aside(path, f"cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
        if is_main:
            set_aside(path, "was made with other settings or data")
        return None
    if progress_format is not None and state.get("progress_format", 1) != progress_format:
        if is_main:
            set_aside(path, "keeps its progress in another layout (an earlier version of bertflow)")
        return None
    return state


def save_training_state(path: Path, accelerator, *, fingerprint: str, model, optimizer, scheduler,
                        progress: dict) -> None:
    """A training loop's checkpoint: weights, optimizer, scheduler, random streams, its `progress`
    record and the torch thread count. The main process writes it; every process waits for it."""
    if accelerator.is_main_process:
        save_checkpoint(path, {
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(accelerator.device.type),
            "progress": progress,
            "progress_format": PROGRESS_FORMAT,
            "threads": torch.get_num_threads(),
        })
    accelerator.wait_for_everyone()


def load_training_state(path: Path, accelerator, *, fingerprint: str, model, optimizer, scheduler) -> dict | None:
    """Load the checkpoint at `path`, when it is one of this run, into the model, optimizer,
    scheduler and random streams; its progress record, or None (start fresh)."""
    state = load_checkpoint(path, fingerprint, is_main=accelerator.is_main_process, progress_format=PROGRESS_FORMAT)
    accelerator.wait_for_everyone()  # the main process may have set the file aside
    if state is None:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"])
    warn_if_threads_differ(state)
    return state["progress"]


class StopRequested(Exception):
    """SIGTERM/SIGINT arrived: a checkpoint was saved; rerun the stage to resume."""


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGTERM (SLURM's time limit) and SIGINT into a flag the loop checks between steps."""
    flag = {"stop": False}

    def handler(signum, _frame):
        log.warning("received signal %d: checkpointing at the next step boundary", signum)
        flag["stop"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_agreed(stop_flag: dict, accelerator, sync_point: bool) -> bool:
    """Whether to stop now. One process: its flag. Under DDP every rank must stop at the same step,
    so the ranks agree through a collective, only at `sync_point`s (not one every step)."""
    if accelerator.num_processes == 1:
        return stop_flag["stop"]
    if not sync_point:
        return False
    flag = torch.tensor(float(stop_flag["stop"]), device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item())


def rng_state(device_type: str) -> dict:
    """The random streams dropout and masking draw from, for an exact resume."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if device_type == "cuda" else None}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def warn_if_threads_differ(state: dict) -> None:
    threads = state.get("threads")
    if threads is not None and threads != torch.get_num_threads():
        log.warning(
            "the checkpoint was written by a run with %d torch threads, this one has %d: training goes on, "
            "but it matches an uninterrupted run bit for bit only with the same thread count "
            "(CPU reductions split their work per thread)", threads, torch.get_num_threads())
