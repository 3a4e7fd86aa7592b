"""Pretraining stage: BERT masked-LM from scratch, perplexity on fixed masks after every epoch.

The loop follows transformers' run_mlm_no_trainer.py (Accelerate handles device placement
and DDP), with the levers that make it faster than `Trainer` + the MLM collator:
packed blocks with no padding (so SDPA runs without a mask), masking on the device, the MLM
head evaluated only at masked positions, fused AdamW on GPU, data resident on the device and
no host synchronisation between log points.

Data: the blocks are read through `block_loader.BlockLoader`: device-resident when small, memory-mapped and
gathered per batch (with one batch prefetched) when large; the order is a seeded permutation per epoch.

Length: `epochs` / `max_steps`, or a budget (`time_budget` minutes of training steps, `token_budget`
tokens) to which the warm-up and linear decay are fitted, so the schedule ends where training ends.

Interruption: a checkpoint (model, optimizer, scheduler, RNG, progress including the position in
the data and the budget spent) is written atomically after every epoch (and every
`checkpoint_every_steps`), and on SIGTERM/SIGINT before exiting. Rerunning the stage resumes from
it, reading on from the saved batch, and ends with the same number of steps.

Run under a launcher as `python -m bertflow.pretrain SPEC.json` (see `bertflow.distributed`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .block_loader import BlockLoader, head_rows
from .block_files import read_meta
from .blocks import load_blocks, tokenizer_fingerprint
from .checkpoints import StopRequested, stop_on_signals
from .distributed import spec_main
from .errors import ConfigError, DataError
from .io import write_json
from .masking import Masker, fixed_eval_masks
from .presets import architecture
from .provenance import environment_info, node_devices
from .runtime import autocast, make_accelerator, resolve_device, resolve_precision
from .settings import from_config, weight_neutral_keys
from .tokenizer import load_tokenizer
from .tracking import Tracker, format_eta
from .training import CheckpointedLoop, LossSum, save_model, write_rows_csv

log = logging.getLogger(__name__)

SCHEDULE_AFTER_STEPS = 3  # a time budget's schedule starts after these (compilation) steps
CSV_COLUMNS = ["epoch", "step", "train_loss", "eval_loss", "perplexity", "tokens_per_s", "elapsed_s", "kind", "time"]


@dataclass
class Settings:
    """The `pretrain` config section (config/config.schema.yaml gives the meanings and defaults)."""

    preset: str | None
    model: dict
    seq_len: int
    epochs: int
    max_steps: int | None
    batch_size: int
    grad_accum: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    adam_beta2: float
    max_grad_norm: float | None
    mlm_probability: float
    precision: str
    attention: str
    compile: bool | str
    compile_mode: str
    max_eval_blocks: int | None
    log_every_steps: int
    checkpoint_every_steps: int
    eval_every_steps: int | None
    time_budget: float | None  # minutes of training steps
    token_budget: int | None
    tensorboard: bool
    seed: int | None

    @classmethod
    def from_config(cls, section: dict) -> "Settings":
        return from_config(cls, section, "pretrain", ignore=("num_processes", "nodes"))  # the launcher's


# --------------------------------------------------------------------------- model pieces


class MaskedLMObjective(nn.Module):
    """Masked-LM loss of a BertForMaskedLM, computing the vocabulary projection only where needed.

    The head is applied per position, so evaluating it on the B x k masked positions gives the
    same loss as the full [B, L, V] logits followed by selection, at a fraction of the cost.
    """

    def __init__(self, mlm: nn.Module, masked_only_head: bool = True):
        super().__init__()
        self.mlm = mlm
        self.masked_only_head = masked_only_head

    def forward(self, inputs: torch.Tensor, positions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hidden = self.mlm.bert(input_ids=inputs).last_hidden_state
        index = positions.unsqueeze(-1)
        if self.masked_only_head:
            logits = self.mlm.cls(hidden.gather(1, index.expand(-1, -1, hidden.size(-1))))
        else:
            logits = self.mlm.cls(hidden).gather(1, index.expand(-1, -1, self.mlm.config.vocab_size))
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


@torch.no_grad()
def masked_lm_loss_sum(objective: MaskedLMObjective, batch, starts: range, batch_size: int, device,
                       autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, masked-token count) of `objective` on a fixed-mask batch (`fixed_eval_masks`),
    `batch_size` rows from each of `starts`; `autocast()` gives the forward's precision context."""
    loss_sum = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    for start in starts:
        sl = slice(start, start + batch_size)
        n = batch.targets[sl].numel()
        with autocast():
            loss = objective(*(t[sl].to(device) for t in (batch.inputs, batch.positions, batch.targets)))
        loss_sum += loss.float() * n
        count += n
    return loss_sum, count


def build_model(settings: Settings, vocab_size: int, pad_token_id: int):
    from transformers import BertConfig, BertForMaskedLM

    fields = architecture(settings.preset, settings.model)
    fields.setdefault("max_position_embeddings", 512)
    if settings.seq_len > fields["max_position_embeddings"]:
        raise ConfigError(
            f"pretrain.seq_len {settings.seq_len} exceeds the model's max_position_embeddings "
            f"{fields['max_position_embeddings']}; lower seq_len or set pretrain.model.max_position_embeddings"
        )
    config = BertConfig(vocab_size=vocab_size, pad_token_id=pad_token_id, **fields)
    config._attn_implementation = settings.attention
    torch.manual_seed(_seed(settings))
    return BertForMaskedLM(config)


def build_optimizer(model: nn.Module, settings: Settings, fused: bool) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights, as in BERT; `fused`: one kernel
    for all parameters (CUDA only)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, settings.adam_beta2),
        eps=1e-6,
        fused=fused,
    )


def _seed(settings: Settings) -> int:
    return 0 if settings.seed is None else settings.seed


def fingerprint(settings: Settings, meta: dict, world_size: int) -> str:
    # Without the keys that leave the weights alone: a checkpoint made under other values resumes.
    neutral = weight_neutral_keys("pretrain")
    relevant = {k: v for k, v in asdict(settings).items() if k not in neutral}
    blob = json.dumps({"settings": relevant, "blocks": meta, "world": world_size}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the loop


@dataclass
class Progress:
    """Where training stands; all of it goes into the checkpoint (plain values: weights_only loads it)."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    elapsed_s: float = 0.0  # training + evaluation
    train_s: float = 0.0  # training steps only: what a time budget counts
    tokens_seen: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    budget_spent: bool = False
    schedule_origin_s: float | None = None  # train_s when a time budget's schedule clock started
    rows: list = field(default_factory=list)


@dataclass(frozen=True)
class Vocab:
    """What the loop needs to know about the tokenizer."""

    size: int
    pad_id: int
    mask_id: int
    special_ids: tuple

    @classmethod
    def of(cls, tokenizer) -> "Vocab":
        return cls(len(tokenizer), tokenizer.pad_token_id, tokenizer.mask_token_id, tuple(tokenizer.all_special_ids))


def warmup_then_decay(progress: float, warmup_ratio: float) -> float:
    """Learning-rate factor at `progress` (0..1) of the schedule: linear warm-up, then linear decay to 0."""
    if progress < warmup_ratio:
        return progress / warmup_ratio
    return max(0.0, (1.0 - progress) / max(1.0 - warmup_ratio, 1e-9))


class Pretrainer(CheckpointedLoop):
    def __init__(self, settings: Settings, *, vocab: Vocab, blocks: dict, meta: dict, device: str, checkpoint_dir: str):
        self.settings = settings
        self.meta = meta
        self.device_kind = resolve_device(device)
        self.precision = resolve_precision(settings.precision, self.device_kind)
        self.accelerator = make_accelerator(self.device_kind)
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.device = self.accelerator.device
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 for whatever runs outside bf16 autocast

        self.model = build_model(settings, vocab.size, vocab.pad_id)
        self.masker = Masker(
            seq_len=settings.seq_len,
            mlm_probability=settings.mlm_probability,
            mask_id=vocab.mask_id,
            vocab_size=vocab.size,
            special_ids=vocab.special_ids,
        )
        self.global_batch = settings.batch_size * self.world * settings.grad_accum
        self.steps_per_epoch = len(blocks["train"]) // self.global_batch
        if self.steps_per_epoch == 0:
            raise DataError(
                f"{meta.get('path', 'blocks')}: {len(blocks['train'])} training blocks are fewer than one global batch "
                f"({settings.batch_size} x {self.world} processes x {settings.grad_accum} accumulation); "
                "add text or lower pretrain.batch_size"
            )
        self.loader = BlockLoader(blocks["train"], device=self.device, seed=_seed(settings),
                                  batch_size=settings.batch_size, world=self.world, rank=self.rank,
                                  grad_accum=settings.grad_accum, steps_per_epoch=self.steps_per_epoch,
                                  vocab_size=vocab.size)
        self.eval_batch = fixed_eval_masks(head_rows(blocks["validation"], settings.max_eval_blocks, vocab.size),
                                           self.masker, seed=_seed(settings) + 1)

        self.tokens_per_step = self.global_batch * settings.seq_len
        self.time_budget_s = settings.time_budget * 60 if settings.time_budget else None
        self.total_steps = self._planned_steps()
        self.epochs = None if self.total_steps is None else math.ceil(self.total_steps / self.steps_per_epoch)

        objective = self.make_objective()
        self.compiled = settings.compile is True or (
            settings.compile == "auto" and self.device.type == "cuda" and self.world == 1)
        if self.compiled:
            objective = torch.compile(objective, mode=settings.compile_mode)
        self.optimizer = self.make_optimizer()
        self.objective, self.optimizer = self.accelerator.prepare(objective, self.optimizer)
        self.progress = Progress()
        self._segment_start = time.perf_counter()
        self._clock = 0.0  # schedule progress (0..1) of a time-budgeted run, the same on all ranks
        # Stepped by hand once per optimizer step (Accelerate's wrapper would step it per process).
        if self.time_budget_s is None:
            from transformers import get_linear_schedule_with_warmup

            self.scheduler = get_linear_schedule_with_warmup(
                self.optimizer, round(settings.warmup_ratio * self.total_steps), self.total_steps
            )
        else:  # Cramming's budget-aware schedule: progress = training time spent / budget (_budget_fraction)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda _: warmup_then_decay(self._clock, settings.warmup_ratio))
        self.mask_generator = torch.Generator(device=self.device)
        self.checkpoint_path = Path(checkpoint_dir, "last.pt")
        self.fingerprint = fingerprint(settings, self.meta, self.world)
        self.tracker: Tracker | None = None
        self.startup_s: float | None = None
        self.loss = LossSum(self.device)  # since the last fold into the progress record
        self._epoch_seconds, self._epoch_tokens = 0.0, 0
        self._log_mark = (time.perf_counter(), 0, 0.0, 0)  # time, step, running loss sum, its steps

    def make_objective(self) -> nn.Module:
        """The loss module; a subclass may return a variant (the training benchmark's levers)."""
        return MaskedLMObjective(self.model)

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer; a subclass may return a variant (the training benchmark's levers)."""
        return build_optimizer(self.model, self.settings, fused=self.device.type == "cuda")

    def _planned_steps(self) -> int | None:
        """Steps to train: from the token budget, else (without a time budget) max_steps or epochs."""
        s = self.settings
        if s.token_budget:
            return math.ceil(s.token_budget / self.tokens_per_step)
        if self.time_budget_s is not None:
            return None
        return s.max_steps or s.epochs * self.steps_per_epoch

    # -- state

    def saved_module(self) -> nn.Module:
        return self.model

    def resume(self) -> bool:
        if not super().resume():
            return False
        self._clock = self._budget_fraction(self.progress.train_s, self.progress.global_step)
        log.info("resumed from %s: epoch %d, step %d of %s%s", self.checkpoint_path, self.progress.epoch + 1,
                 self.progress.global_step, self.total_steps or "a time budget", self._budget_note())
        return True

    def checkpoint(self) -> None:
        super().checkpoint()
        if self.accelerator.is_main_process:
            write_rows_csv(self.checkpoint_path.with_name("perplexity_so_far.csv"), self.progress.rows, CSV_COLUMNS)

    # -- steps

    def autocast(self):
        return autocast(self.device.type, self.precision)

    def micro_batches(self, epoch: int, step: int):
        """This rank's micro-batches for one optimizer step."""
        for micro in range(self.settings.grad_accum):
            yield self.loader.batch(epoch, step, micro)

    def optimizer_step(self, epoch: int, step: int) -> torch.Tensor:
        """One optimizer step; returns the summed micro-batch losses as a device tensor (no sync)."""
        # Masks depend only on (seed, rank, step): the same after a resume as without one.
        self.mask_generator.manual_seed(_seed(self.settings) + 7919 * self.rank + 104729 * self.progress.global_step)
        total = torch.zeros((), device=self.device)
        accum = self.settings.grad_accum
        for micro, ids in enumerate(self.micro_batches(epoch, step)):
            batch = self.masker(ids, self.mask_generator)
            sync = contextlib.nullcontext() if micro == accum - 1 else self.accelerator.no_sync(self.objective)
            with sync, self.autocast():
                loss = self.objective(batch.inputs, batch.positions, batch.targets)
                self.accelerator.backward(loss / accum)
            total += loss.detach()
        if self.settings.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()
        if self.time_budget_s is not None:
            self._clock = self._budget_fraction(self.train_seconds(), self.progress.global_step + 1)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean masked-LM loss over the fixed validation masks (this rank's share, then summed)."""
        self.objective.eval()
        bs = self.settings.batch_size
        starts = range(self.rank * bs, len(self.eval_batch.inputs), bs * self.world)
        loss_sum, count = masked_lm_loss_sum(self.objective, self.eval_batch, starts, bs, self.device, self.autocast)
        self.objective.train()
        loss_sum, count = self.accelerator.reduce(torch.stack([loss_sum, count]), reduction="sum")
        return (loss_sum / count).item()

    # -- budget

    def train_seconds(self) -> float:
        """Training time so far, the segment running since the last start or resume included (the budget's clock)."""
        return self.progress.train_s + (time.perf_counter() - self._segment_start)

    def _budget_fraction(self, seconds: float, steps_done: int) -> float:
        """Schedule progress (0..1, >= 1 once the budget is spent) after `seconds` of training and
        `steps_done` steps; 0 without a time budget.

        The budget counts every training second, but the schedule's clock starts after the first
        SCHEDULE_AFTER_STEPS steps: torch.compile and CUDA-graph capture happen there, and would
        otherwise use up the warm-up while hardly any step is taken.
        """
        if self.time_budget_s is None:
            return 0.0
        if self.world > 1:  # one clock for all ranks, or their learning rates would differ
            seconds = self.accelerator.reduce(torch.tensor(seconds, device=self.device), reduction="max").item()
        p = self.progress
        if p.schedule_origin_s is None and steps_done >= SCHEDULE_AFTER_STEPS:
            p.schedule_origin_s = seconds
        if seconds >= self.time_budget_s:
            fraction = 1.0
        elif p.schedule_origin_s is None:
            fraction = 0.0
        else:
            fraction = (seconds - p.schedule_origin_s) / (self.time_budget_s - p.schedule_origin_s)
        if self.total_steps:  # a token budget as well: the schedule follows whichever is nearer its end
            fraction = max(fraction, steps_done / self.total_steps)
        return fraction

    def _budget_note(self) -> str:
        if self.time_budget_s is None:
            return ""
        left = max(0.0, self.time_budget_s - self.progress.train_s)
        return f"; {format_eta(left)} of the {self.settings.time_budget:g}-minute budget left"

    def plan(self) -> str:
        """What this run will train, for the log."""
        s = self.settings
        if self.time_budget_s is not None:
            cap = f", at most {self.total_steps} steps (token budget)" if self.total_steps else ""
            return f"a {s.time_budget:g}-minute training budget{cap}; epochs of {self.steps_per_epoch} steps"
        return f"{self.total_steps} steps ({self.epochs} epochs of {self.steps_per_epoch})"

    def stopped_by(self) -> str:
        s, p = self.settings, self.progress
        if self.time_budget_s is not None and p.train_s >= self.time_budget_s:
            return "time_budget"
        if s.token_budget:
            return "token_budget"
        return "max_steps" if s.max_steps else "epochs"

    def finished(self) -> bool:
        p = self.progress
        return p.budget_spent or (self.total_steps is not None and p.global_step >= self.total_steps)

    # -- the loop

    def train(self, stop_flag: dict) -> None:
        s, p = self.settings, self.progress
        self.objective.train()
        self._segment_start = time.perf_counter()
        self._log_mark = (self._segment_start, p.global_step, 0.0, 0)
        while not self.finished():
            steps_this_epoch = self.steps_per_epoch
            if self.total_steps is not None:
                steps_this_epoch = min(steps_this_epoch, self.total_steps - p.epoch * self.steps_per_epoch)
            for step in range(p.step_in_epoch, steps_this_epoch):
                self.loss.add(self.optimizer_step(p.epoch, step))
                p.step_in_epoch, p.global_step = step + 1, p.global_step + 1
                p.budget_spent = self._clock >= 1.0
                if p.global_step % s.log_every_steps == 0:
                    self.log_progress()
                if p.budget_spent:
                    break
                if s.eval_every_steps and p.global_step % s.eval_every_steps == 0 and step + 1 < steps_this_epoch:
                    self.add_row("step")
                stop = self.stop_now(stop_flag, sync_point=p.global_step % s.log_every_steps == 0)
                if stop or (s.checkpoint_every_steps and p.global_step % s.checkpoint_every_steps == 0):
                    self._fold()
                    if stop:
                        self.stop(f"stopped at step {p.global_step}")
                    self.checkpoint()
                    self._segment_start = time.perf_counter()
            self._finish_stretch(epoch_done=p.step_in_epoch == self.steps_per_epoch)

    def _finish_stretch(self, epoch_done: bool) -> None:
        """Epoch end, or the end of training mid-epoch (max_steps or a budget): a row and a checkpoint."""
        p = self.progress
        if epoch_done:
            self.add_row("epoch")
            p.epoch, p.step_in_epoch, p.epoch_loss_sum, p.epoch_loss_count = p.epoch + 1, 0, 0.0, 0
            self._epoch_seconds, self._epoch_tokens = 0.0, 0
        else:
            self.add_row("end")
            p.budget_spent = True  # nothing left to train, even if a token budget ended mid-epoch
        self.checkpoint()
        self._segment_start = time.perf_counter()

    def log_progress(self) -> None:
        """The progress line and TensorBoard scalars (one host sync, at log points only)."""
        p = self.progress
        now, running = time.perf_counter(), self.loss.total.item()
        mark_time, mark_step, mark_sum, mark_steps = self._log_mark
        loss = (running - mark_sum) / max((self.loss.steps - mark_steps) * self.settings.grad_accum, 1)
        tokens_per_s = (p.global_step - mark_step) * self.tokens_per_step / max(now - mark_time, 1e-9)
        self._log_mark = (now, p.global_step, running, self.loss.steps)
        lr = self.scheduler.get_last_lr()[0]
        if self.tracker is not None:
            left = None if self.time_budget_s is None else self.time_budget_s - self.train_seconds()
            self.tracker.progress(p.global_step, self.total_steps, label=f"epoch {p.epoch + 1}", eta_s=left,
                                  loss=loss, lr=lr, tokens_per_s=round(tokens_per_s))
            self.tracker.scalars(p.global_step, loss=loss, lr=lr, tokens_per_s=tokens_per_s)

    def _fold(self) -> None:
        """Move the running loss sum, tokens and time into the progress record (one host sync)."""
        p, steps = self.progress, self.loss.steps
        if steps > 0:
            p.epoch_loss_sum += self.loss.take(self.accelerator, reduction="sum")[0]
            p.epoch_loss_count += steps * self.settings.grad_accum * self.world
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        seconds = now - self._segment_start
        tokens = steps * self.tokens_per_step
        p.elapsed_s += seconds
        p.train_s += seconds
        p.tokens_seen += tokens
        # Throughput of what this process trained (an epoch may span a resume).
        self._epoch_seconds += seconds
        self._epoch_tokens += tokens
        self._segment_start = now
        self._log_mark = (*self._log_mark[:2], 0.0, 0)

    def add_row(self, kind: str) -> dict:
        """Evaluate and record a perplexity row: kind 'epoch' (an epoch end), 'step' (eval_every_steps)
        or 'end' (training stopped mid-epoch). Its epoch is fractional: steps done / steps per epoch."""
        self._fold()
        p = self.progress
        eval_start = time.perf_counter()
        eval_loss = self.evaluate()
        p.elapsed_s += time.perf_counter() - eval_start
        epochs = round(p.global_step / self.steps_per_epoch, 4)
        row = {
            "epoch": int(epochs) if epochs == int(epochs) else epochs,
            "step": p.global_step,
            "train_loss": p.epoch_loss_sum / max(p.epoch_loss_count, 1),
            "eval_loss": eval_loss,
            "perplexity": math.exp(min(eval_loss, 50.0)),
            "tokens_per_s": self._epoch_tokens / max(self._epoch_seconds, 1e-9),
            "elapsed_s": p.elapsed_s,
            "kind": kind,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        p.rows.append(row)
        log.info("epoch %s (%s): train loss %.4f, eval loss %.4f, perplexity %.2f, %.0f tokens/s%s",
                 row["epoch"], kind, row["train_loss"], eval_loss, row["perplexity"], row["tokens_per_s"],
                 self._budget_note())
        if self.tracker is not None:
            self.tracker.scalars(p.global_step, eval_loss=eval_loss, perplexity=row["perplexity"])
        self._segment_start = time.perf_counter()
        return row


def check_world_fits(blocks_dir: str, pretrain_config: dict) -> None:
    """Fail before launching when the world (nodes x num_processes) cannot fill one global batch."""
    from .checks import world_size_problems

    if problems := world_size_problems(pretrain_config, read_meta(blocks_dir), blocks_dir):
        raise DataError(problems[0])


def check_blocks_match(meta: dict, tokenizer, tokenizer_dir: str, blocks_dir: str, seq_len: int) -> None:
    """Blocks, tokenizer and config must agree before we spend hours training."""
    if meta["vocab_size"] != len(tokenizer) or meta["tokenizer_fingerprint"] != tokenizer_fingerprint(tokenizer_dir):
        raise DataError(
            f"{blocks_dir} was tokenized with another tokenizer (vocab {meta['vocab_size']}) than "
            f"{tokenizer_dir} (vocab {len(tokenizer)}); rerun the tokenize_corpus rule"
        )
    if meta["seq_len"] != seq_len:
        raise DataError(
            f"{blocks_dir} holds blocks of {meta['seq_len']} tokens but pretrain.seq_len is {seq_len}; "
            "rerun the tokenize_corpus rule"
        )


def perplexity_figure(rows: list[dict]):
    """Validation perplexity against (fractional) epochs: every row, epoch ends marked when there are
    mid-epoch rows; integer epoch ticks when all rows are epoch ends; plain numbers on the log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    # Minor ticks over a wide range: label 2, 3 and 5 x 10^k only, so they do not crowd the axis.
    some = FuncFormatter(lambda value, _: f"{value:g}" if round(value / 10 ** math.floor(math.log10(value))) in (2, 3, 5)
                         else "")
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [float(r["epoch"]) for r in rows]
    ax.plot(epochs, [float(r["perplexity"]) for r in rows], marker="o" if len(rows) <= 40 else None, markersize=4)
    ends = [r for r in rows if r.get("kind", "epoch") != "step"]
    if len(ends) < len(rows):
        ax.plot([float(r["epoch"]) for r in ends], [float(r["perplexity"]) for r in ends], "o", label="epoch end")
        ax.legend()
    if all(e == int(e) for e in epochs):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain)  # 70, not 7x10^1
    values = [float(r["perplexity"]) for r in rows]
    ax.yaxis.set_minor_formatter(plain if max(values) < 10 * min(values) else some)  # a narrow range has no major tick
    ax.set_title("Masked-LM perplexity (fixed validation masks)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_perplexity(rows: list[dict], path: str) -> None:
    import matplotlib.pyplot as plt

    fig = perplexity_figure(rows)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_final(trainer: Pretrainer, tokenizer, out: dict, started: float, nodes: list[dict]) -> None:
    """Model + tokenizer, perplexity CSV and plot, and the run's info JSON (main process only)."""
    save_model(trainer.model, tokenizer, out["model"])
    rows = trainer.progress.rows
    write_rows_csv(out["perplexity"], rows, CSV_COLUMNS)
    plot_perplexity(rows, out["plot"])
    write_json(
        out["info"],
        {
            "device": str(trainer.device),
            "precision": trainer.precision,
            "compiled": trainer.compiled,
            "processes": trainer.world,
            "nodes": len(nodes),
            "processes_per_node": trainer.world // len(nodes),
            "wall_time_s": trainer.progress.elapsed_s,
            "train_time_s": trainer.progress.train_s,
            "startup_s": trainer.startup_s,
            "stage_wall_time_s": time.time() - started,
            "tokens_seen": trainer.progress.tokens_seen,
            "steps": trainer.progress.global_step,
            "epochs": rows[-1]["epoch"],
            "stopped_by": trainer.stopped_by(),
            "steps_per_epoch": trainer.steps_per_epoch,
            "global_batch_blocks": trainer.global_batch,
            "final_perplexity": rows[-1]["perplexity"],
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "blocks": trainer.meta,
            "settings": asdict(trainer.settings),
            "environment": environment_info(nodes),
        },
    )


def pretrain(*, tokenizer_dir: str, blocks_dir: str, outputs: dict, train: dict, device: str, seed: int,
             checkpoint_dir: str) -> dict:
    """Stage entry: train (resuming when a matching checkpoint exists), then write the outputs."""
    started = time.time()
    meta, blocks = load_blocks(blocks_dir)
    # The block length comes with the blocks, as the vocabulary comes with the tokenizer (the rule
    # passes no seq_len); a caller's own seq_len must agree with them (check_blocks_match).
    settings = Settings.from_config({"seq_len": meta["seq_len"], **train, "seed": seed})
    tokenizer = load_tokenizer(tokenizer_dir)
    check_blocks_match(meta, tokenizer, tokenizer_dir, blocks_dir, settings.seq_len)
    trainer = Pretrainer(settings, vocab=Vocab.of(tokenizer), blocks=blocks, meta={**meta, "path": blocks_dir},
                         device=device, checkpoint_dir=checkpoint_dir)
    log.info("%s on %s (%s%s), %d processes; %s; %d parameters; blocks %s", settings.preset or "custom",
             trainer.device, trainer.precision, f", compiled {settings.compile_mode}" if trainer.compiled else "",
             trainer.world, trainer.plan(), sum(p.numel() for p in trainer.model.parameters()),
             "on the device" if trainer.loader.resident else "memory-mapped")
    resumed = trainer.resume()
    tensorboard_dir = Path(checkpoint_dir).parent / "tensorboard"
    if not resumed and trainer.accelerator.is_main_process:
        shutil.rmtree(tensorboard_dir, ignore_errors=True)  # curves of an earlier, replaced run
    trainer.tracker = Tracker("pretrain", tensorboard_dir, enabled=settings.tensorboard,
                              is_main=trainer.accelerator.is_main_process,
                              purge_step=trainer.progress.global_step if resumed else None)
    trainer.startup_s = time.time() - started
    try:
        with stop_on_signals() as stop_flag:
            trainer.train(stop_flag)
    finally:
        trainer.tracker.close()
        trainer.loader.close()
    nodes = node_devices(trainer.device)  # a collective: every rank contributes its device
    if trainer.accelerator.is_main_process:
        save_final(trainer, tokenizer, outputs, started, nodes)
        # The outputs now hold everything; a stale checkpoint would wrongly "resume" a later rerun
        # (e.g. after a code change) straight to the end. Set-aside ones live in stale-checkpoints/.
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return {"rows": trainer.progress.rows, "steps": trainer.progress.global_step}


# `python -m bertflow.pretrain SPEC.json`: the entry a distributed launcher starts per process.
main = spec_main(pretrain, exit_codes={StopRequested: 143})


if __name__ == "__main__":
    sys.exit(main())
