"""What the pretraining and fine-tuning loops share: the checkpoint/resume hooks around their
progress record, the loss sum kept on the device between log points, the CSV of their rows, and
the save of the trained model through a partial folder. Each stage keeps its own steps, evaluation
and rows (bertflow.pretrain, bertflow.finetune).
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from .checkpoints import StopRequested, load_training_state, save_training_state, stop_agreed
from .io import save_tokenizer, write_text


class CheckpointedLoop:
    """Resume from and write the run's checkpoint: weights, optimizer, scheduler, random streams
    and the `progress` record (a dataclass of plain values).

    A stage sets `accelerator`, `optimizer`, `scheduler`, `progress`, `fingerprint` and
    `checkpoint_path` (None: the run keeps no checkpoint), and says which module's weights are
    saved (`saved_module`)."""

    def saved_module(self) -> torch.nn.Module:
        raise NotImplementedError

    def progress_record(self) -> dict:
        """What the checkpoint keeps of the progress."""
        return asdict(self.progress)

    def resume(self) -> bool:
        """Load the run's checkpoint when there is one of the same run; False: start at the beginning."""
        if self.checkpoint_path is None:
            return False
        progress = load_training_state(self.checkpoint_path, self.accelerator, fingerprint=self.fingerprint,
                                       model=self.saved_module(), optimizer=self.optimizer, scheduler=self.scheduler)
        if progress is None:
            return False
        self.progress = type(self.progress)(**progress)
        return True

    def checkpoint(self) -> None:
        save_training_state(self.checkpoint_path, self.accelerator, fingerprint=self.fingerprint,
                            model=self.saved_module(), optimizer=self.optimizer, scheduler=self.scheduler,
                            progress=self.progress_record())

    def stop_now(self, stop_flag: dict | None, sync_point: bool) -> bool:
        """A signal asked to stop (`stop_flag` is None when there is no checkpoint folder to stop into);
        under DDP the ranks agree at `sync_point`s only."""
        return stop_flag is not None and stop_agreed(stop_flag, self.accelerator, sync_point)

    def stop(self, message: str):
        """Checkpoint, then end the stage (its entry turns StopRequested into exit code 143)."""
        self.checkpoint()
        raise StopRequested(f"{message}; checkpoint {self.checkpoint_path}")


class LossSum:
    """Step losses summed on the device, in float64 (the same sum wherever a resume cuts), with no
    host synchronisation until `take`."""

    def __init__(self, device):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach().double()
        self.steps += 1

    def take(self, accelerator, reduction: str) -> tuple[float, int]:
        """(the sum over processes, reduced by `reduction`, and the steps it holds); starts a new sum."""
        value = accelerator.reduce(self.total.clone(), reduction=reduction).item()
        steps = self.steps
        self.total.zero_()
        self.steps = 0
        return value, steps


def write_rows_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """The rows as CSV, written atomically; `columns` default to the first row's keys."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or list(rows[0]), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_model(model, tokenizer, target: str | Path, state_dict: dict | None = None) -> None:
    """Model (safetensors; `state_dict`: only these weights) and tokenizer into `target`, through a
    partial folder: a kill during the save leaves the previous folder, never a half-written one."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, state_dict=state_dict)
    save_tokenizer(tokenizer, partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
