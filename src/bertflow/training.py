"""The training-loop core that pretraining and fine-tuning share: the loop itself (`run_loop`,
top to bottom in the manner of nanoGPT's train.py), the progress record its checkpoints keep, the
loss sum kept on the device between log points, the progress lines and TensorBoard scalars, the
checkpoint/resume hooks, the CSV of the rows, and the save of the trained model through a partial
folder. Each stage keeps what is its own (bertflow.pretrain, bertflow.finetune): its batches and
loss, its evaluation and rows, its budget.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoints import StopRequested, load_training_state, save_training_state, stop_agreed
from .io import save_tokenizer, write_text

log = logging.getLogger(__name__)


def run_loop(loop: "TrainingLoop", stop_flag: dict | None) -> None:
    """Train until `loop.finished()`, in stretches: an epoch, or the part of one that is left (a
    resume starts mid-epoch; a step count or a budget can end mid-epoch). `stop_flag`: set by a
    signal (`stop_on_signals`); None: no checkpoint to stop into."""
    p = loop.progress
    loop.stretch.restart(p.global_step)
    while not loop.finished():
        loop.start_epoch()
        steps = loop.steps_this_epoch()
        for step in range(p.step_in_epoch, steps):
            micro_batches = loop.micro_batches(p.epoch, step)
            loss = loop.forward_backward(micro_batches)
            loop.clip_gradients()
            loop.step_optimizer()
            loop.count_step(loss)
            last = step + 1 == steps
            if loop.log_due(last):
                loop.log_progress()
            if loop.out_of_budget():
                break
            if loop.eval_due(last):
                loop.add_row("step")
            if loop.stop_requested(stop_flag, last):
                loop.fold()
                loop.stop()
            if loop.checkpoint_due():
                loop.save_point()
        loop.end_stretch(stop_flag)


@dataclass
class Progress:
    """Where a run stands; all of it goes into the checkpoint (plain values: weights_only loads it).
    A stage adds its own fields in a subclass."""

    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0
    global_step: int = 0
    seen: int = 0  # what the stage counts (tokens, examples) trained on, all processes together
    train_s: float = 0.0  # training steps only: what a time budget counts
    elapsed_s: float = 0.0  # training and evaluation
    epoch_loss_sum: float = 0.0  # this epoch's losses so far, reduced over processes
    epoch_loss_count: int = 0  # how many losses that sum holds
    epoch_seen: int = 0
    epoch_train_s: float = 0.0
    rows: list = field(default_factory=list)  # one per evaluation


@dataclass(frozen=True)
class StepPlan:
    """How an optimizer step is taken and counted, and how often the loop logs, evaluates and
    checkpoints (in optimizer steps; None: never)."""

    seen_per_step: int  # tokens or examples one step trains on, all processes together
    log_every: int
    grad_accum: int = 1  # micro-batches per step
    max_grad_norm: float | None = None  # None: no clipping
    eval_every: int | None = None
    checkpoint_every: int | None = None


class LossSum:
    """Step losses summed on the device, in float64 (the same sum wherever a resume cuts), with no
    host synchronisation until `take`. `terms`: how many losses the sum holds (a step's loss may be
    the sum of its micro-batches' losses)."""

    def __init__(self, device):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0
        self.terms = 0

    def add(self, loss: torch.Tensor, terms: int = 1) -> None:
        self.total += loss.detach().double()
        self.steps += 1
        self.terms += terms

    def take(self, accelerator, reduction: str) -> tuple[float, int]:
        """(the sum over processes, reduced by `reduction`, and the losses it holds: all processes'
        for "sum", one process's for "mean"); starts a new sum."""
        value = accelerator.reduce(self.total.clone(), reduction=reduction).item()
        terms = self.terms * (accelerator.num_processes if reduction == "sum" else 1)
        self.total.zero_()
        self.steps = self.terms = 0
        return value, terms


class Stretch:
    """The steps since the last fold into the progress record: their loss sum (on the device) and
    the clock, and where the last progress line left off. Not checkpointed: a run starts a new one."""

    def __init__(self, device):
        self.loss = LossSum(device)
        self.restart(0)

    def restart(self, step: int) -> None:
        """Time training from now (after a start, an evaluation or a checkpoint)."""
        self.started = self.log_time = time.perf_counter()
        self.log_step = step
        self.log_total, self.log_terms = 0.0, 0  # a restart follows a fold: the loss sum is empty

    def lap(self) -> float:
        """Seconds since the stretch started or was last folded; the loss sum starts again."""
        now = time.perf_counter()
        seconds, self.started = now - self.started, now
        self.log_total = self.log_terms = 0
        return seconds

    def window(self, step: int, seen_per_step: int) -> tuple[float, float]:
        """(mean loss on this process, and what was trained on per second) since the last line: one host sync."""
        now, total = time.perf_counter(), self.loss.total.item()
        loss = (total - self.log_total) / max(self.loss.terms - self.log_terms, 1)
        rate = (step - self.log_step) * seen_per_step / max(now - self.log_time, 1e-9)
        self.log_time, self.log_step, self.log_total, self.log_terms = now, step, total, self.loss.terms
        return loss, rate


class TrainingLoop:
    """The pieces `run_loop` calls; a stage subclasses it and supplies what is its own.

    A stage sets `name`, `accelerator`, `trained` (the prepared module that computes the loss),
    `optimizer`, `scheduler`, `progress` (a Progress), `stretch` (a Stretch), `tracker`,
    `step_plan` (a StepPlan), `steps_per_epoch`, `total_steps` (None: until a budget ends),
    `fingerprint` and `checkpoint_path` (None: the run keeps no checkpoint); and it defines
    `saved_module`, `micro_batches`, `loss_of`, `evaluate` and `make_row`."""

    RATE = "examples_per_s"  # the throughput's name in the progress line and TensorBoard
    TAGS = ""  # prefix of the training scalars' TensorBoard tags
    LOSS_REDUCTION = "mean"  # how the processes' loss sums combine ("sum": the stage divides by all terms)
    STOPS_AT_EPOCH_END = False  # True: an epoch's last step does not check for a stop; its end does
    CHECKPOINTS_THE_END = True  # False: no checkpoint after the last stretch (the outputs follow)

    # -- what the stage supplies

    def saved_module(self) -> torch.nn.Module:
        raise NotImplementedError

    def micro_batches(self, epoch: int, step: int):
        """This process's micro-batches for optimizer step `step` of `epoch`."""
        raise NotImplementedError

    def loss_of(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError

    def make_row(self, kind: str, result, eval_s: float) -> tuple[dict, dict]:
        """(the row of an evaluation's `result`, and its TensorBoard scalars)."""
        raise NotImplementedError

    def note(self) -> str:
        """What the resume and row lines add (e.g. the budget left)."""
        return ""

    def out_of_budget(self) -> bool:
        return False

    def advance_schedule(self) -> None:
        """Runs between the optimizer's step and the scheduler's (a budget's clock)."""

    def autocast(self):
        return contextlib.nullcontext()

    # -- the steps

    def finished(self) -> bool:
        return self.out_of_budget() or (self.total_steps is not None and self.progress.global_step >= self.total_steps)

    def steps_this_epoch(self) -> int:
        if self.total_steps is None:
            return self.steps_per_epoch
        return min(self.steps_per_epoch, self.total_steps - self.progress.epoch * self.steps_per_epoch)

    def start_epoch(self) -> None:
        self.trained.train()

    def forward_backward(self, micro_batches) -> torch.Tensor:
        """Forward and backward over the micro-batches, the gradients accumulated (DDP syncs them on
        the last only); the summed micro-batch losses as a device tensor (no sync)."""
        accum = self.step_plan.grad_accum
        total = torch.zeros((), device=self.accelerator.device)
        for micro, batch in enumerate(micro_batches):
            sync = contextlib.nullcontext() if micro == accum - 1 else self.accelerator.no_sync(self.trained)
            with sync:
                with self.autocast():  # the forward only: backward ops take the types autocast chose
                    loss = self.loss_of(batch)
                self.accelerator.backward(loss / accum)
            total += loss.detach()
        return total

    def clip_gradients(self) -> None:
        if self.step_plan.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.saved_module().parameters(), self.step_plan.max_grad_norm)

    def step_optimizer(self) -> None:
        self.optimizer.step()
        self.advance_schedule()
        self.scheduler.step()  # by hand, once per optimizer step (Accelerate's wrapper steps it per process)
        self.optimizer.zero_grad(set_to_none=True)

    def optimizer_step(self, epoch: int, step: int) -> torch.Tensor:
        """One step as `run_loop` takes it, without the counting (what the benchmarks time)."""
        loss = self.forward_backward(self.micro_batches(epoch, step))
        self.clip_gradients()
        self.step_optimizer()
        return loss

    def count_step(self, loss: torch.Tensor) -> None:
        p = self.progress
        self.stretch.loss.add(loss, self.step_plan.grad_accum)
        p.step_in_epoch, p.global_step = p.step_in_epoch + 1, p.global_step + 1

    # -- when

    def at_log_point(self) -> bool:
        return self.progress.global_step % self.step_plan.log_every == 0

    def log_due(self, last_step: bool) -> bool:
        return self.at_log_point()

    def eval_due(self, last_step: bool) -> bool:
        """An evaluation between rows at a stretch's end (which has its own)."""
        every = self.step_plan.eval_every
        return bool(every) and self.progress.global_step % every == 0 and not last_step

    def checkpoint_due(self) -> bool:
        every = self.step_plan.checkpoint_every
        return bool(every) and self.progress.global_step % every == 0

    def stop_requested(self, stop_flag: dict | None, last_step: bool) -> bool:
        """A signal asked to stop (`stop_flag` is None when there is no checkpoint folder to stop into);
        under DDP the ranks agree at log points only."""
        if last_step and self.STOPS_AT_EPOCH_END:
            return False
        return self.stop_now(stop_flag, sync_point=self.at_log_point())

    def stop_now(self, stop_flag: dict | None, sync_point: bool) -> bool:
        return stop_flag is not None and stop_agreed(stop_flag, self.accelerator, sync_point)

    # -- the record

    def train_seconds(self) -> float:
        """Training time so far, the stretch running now included (a budget's clock)."""
        return self.progress.train_s + (time.perf_counter() - self.stretch.started)

    def fold(self) -> None:
        """Move the stretch's loss sum, time and count into the progress record (one host sync)."""
        p, steps = self.progress, self.stretch.loss.steps
        if steps > 0:
            total, terms = self.stretch.loss.take(self.accelerator, reduction=self.LOSS_REDUCTION)
            p.epoch_loss_sum += total
            p.epoch_loss_count += terms
        if self.accelerator.device.type == "cuda":
            torch.cuda.synchronize()
        seconds, seen = self.stretch.lap(), steps * self.step_plan.seen_per_step
        p.train_s, p.elapsed_s, p.epoch_train_s = p.train_s + seconds, p.elapsed_s + seconds, p.epoch_train_s + seconds
        p.seen, p.epoch_seen = p.seen + seen, p.epoch_seen + seen

    def epoch_train_loss(self) -> float:
        return self.progress.epoch_loss_sum / max(self.progress.epoch_loss_count, 1)

    def next_epoch(self) -> None:
        p = self.progress
        p.epoch, p.step_in_epoch = p.epoch + 1, 0
        p.epoch_loss_sum, p.epoch_loss_count, p.epoch_seen, p.epoch_train_s = 0.0, 0, 0, 0.0

    def log_progress(self, label: str = "", eta_s: float | None = None) -> None:
        """The progress line and TensorBoard scalars of the steps since the last line."""
        step = self.progress.global_step
        loss, rate = self.stretch.window(step, self.step_plan.seen_per_step)
        lr = self.scheduler.get_last_lr()[0]
        self.tracker.progress(step, self.total_steps, label=label, eta_s=eta_s, loss=loss, lr=lr,
                              **{self.RATE: round(rate)})
        self.tracker.scalars(step, **{f"{self.TAGS}{k}": v for k, v in (("loss", loss), ("lr", lr), (self.RATE, rate))})

    def add_row(self, kind: str) -> dict:
        """Evaluate (timed apart from training) and record a row: kind "epoch" (an epoch's end),
        "step" (between epoch ends) or "end" (training ended mid-epoch)."""
        self.fold()
        p = self.progress
        started = time.perf_counter()
        result = self.evaluate()
        eval_s = time.perf_counter() - started
        p.elapsed_s += eval_s
        row, scalars = self.make_row(kind, result, eval_s)
        p.rows.append(row)
        self.tracker.scalars(p.global_step, **scalars)
        values = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "epoch")
        log.info("%s epoch %s%s: %s%s", self.name, row["epoch"], "" if kind == "epoch" else f" ({kind})", values,
                 self.note())
        self.stretch.restart(p.global_step)
        return row

    def end_stretch(self, stop_flag: dict | None) -> None:
        """An epoch's end, or the end of training mid-epoch: a row, then (unless training is over
        and the stage writes its outputs next) a stop check and a checkpoint."""
        epoch_done = self.progress.step_in_epoch == self.steps_per_epoch
        self.add_row("epoch" if epoch_done else "end")
        if epoch_done:
            self.next_epoch()
        if self.finished() and not self.CHECKPOINTS_THE_END:
            return
        if self.STOPS_AT_EPOCH_END and self.stop_now(stop_flag, sync_point=True):
            self.stop()
        self.checkpoint()
        self.stretch.restart(self.progress.global_step)

    def save_point(self) -> None:
        """A checkpoint between a stretch's steps."""
        self.fold()
        self.checkpoint()
        self.stretch.restart(self.progress.global_step)

    # -- the checkpoint

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
        p = self.progress
        log.info("%s: resumed from %s: epoch %d, step %d of %s%s", self.name, self.checkpoint_path, p.epoch + 1,
                 p.global_step, self.total_steps or "a time budget", self.note())
        return True

    def checkpoint(self) -> None:
        """Weights, optimizer, scheduler, random streams and the progress record (none without a checkpoint path)."""
        if self.checkpoint_path is None:
            return
        save_training_state(self.checkpoint_path, self.accelerator, fingerprint=self.fingerprint,
                            model=self.saved_module(), optimizer=self.optimizer, scheduler=self.scheduler,
                            progress=self.progress_record())

    def stop(self):
        """Checkpoint, then end the stage (its entry turns StopRequested into exit code 143)."""
        self.checkpoint()
        p = self.progress
        raise StopRequested(f"stopped at step {p.global_step} (epoch {p.epoch + 1}, step {p.step_in_epoch} of "
                            f"{self.steps_per_epoch}); checkpoint {self.checkpoint_path}")


def weight_decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups as BERT and transformers' Trainer make them: no decay on biases and
    norm weights (every 1-D parameter), `weight_decay` on the rest."""
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


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
