"""Pretraining stage: BERT masked-LM from scratch, perplexity on fixed masks after every epoch.

The loop (bertflow.training.run_loop, which fine-tuning shares) follows transformers'
run_mlm_no_trainer.py (Accelerate handles device placement and DDP), with the levers that make
it faster than `Trainer` + the MLM collator: packed blocks with no padding (so SDPA runs without
a mask), masking on the device, the MLM head evaluated only at masked positions, fused AdamW on
GPU, data resident on the device and no host synchronisation between log points.

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

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
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
from .training import (Progress, StepPlan, Stretch, TrainingLoop, run_loop, save_model, weight_decay_groups,
                       write_rows_csv)

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
    return torch.optim.AdamW(
        weight_decay_groups(model, settings.weight_decay),
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
class PretrainProgress(Progress):
    """The shared progress record and a time budget's schedule: `seen` counts tokens."""

    budget_fraction: float = 0.0  # schedule progress (0..1) of a time-budgeted run, the same on all ranks
    schedule_origin_s: float | None = None  # train_s when a time budget's schedule clock started


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


def planned_steps(settings: Settings, steps_per_epoch: int, tokens_per_step: int) -> int | None:
    """Steps to train: from the token budget, else (without a time budget) max_steps or epochs."""
    if settings.token_budget:
        return math.ceil(settings.token_budget / tokens_per_step)
    if settings.time_budget:
        return None
    return settings.max_steps or settings.epochs * steps_per_epoch


def describe_plan(settings: Settings, total_steps: int | None, steps_per_epoch: int) -> str:
    """What a run will train, for the log."""
    if settings.time_budget:
        cap = f", at most {total_steps} steps (token budget)" if total_steps else ""
        return f"a {settings.time_budget:g}-minute training budget{cap}; epochs of {steps_per_epoch} steps"
    return f"{total_steps} steps ({math.ceil(total_steps / steps_per_epoch)} epochs of {steps_per_epoch})"


class Pretrainer(TrainingLoop):
    name = "pretrain"
    RATE = "tokens_per_s"
    LOSS_REDUCTION = "sum"  # the train loss divides by every micro-batch of every process

    def __init__(self, settings: Settings, *, vocab: Vocab, blocks: dict, meta: dict, device: str, checkpoint_dir: str):
        self.settings = settings
        self.meta = meta
        device_kind = resolve_device(device)
        self.precision = resolve_precision(settings.precision, device_kind)
        self.accelerator = make_accelerator(device_kind)
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

        self.step_plan = StepPlan(seen_per_step=self.global_batch * settings.seq_len,
                                  log_every=settings.log_every_steps, grad_accum=settings.grad_accum,
                                  max_grad_norm=settings.max_grad_norm, eval_every=settings.eval_every_steps,
                                  checkpoint_every=settings.checkpoint_every_steps)
        self.time_budget_s = settings.time_budget * 60 if settings.time_budget else None
        self.total_steps = planned_steps(settings, self.steps_per_epoch, self.step_plan.seen_per_step)

        objective = self.make_objective()
        self.compiled = settings.compile is True or (
            settings.compile == "auto" and self.device.type == "cuda" and self.world == 1)
        if self.compiled:
            objective = torch.compile(objective, mode=settings.compile_mode)
        self.optimizer = self.make_optimizer()
        self.trained, self.optimizer = self.accelerator.prepare(objective, self.optimizer)
        self.progress = PretrainProgress()
        self.stretch = Stretch(self.device)
        if self.time_budget_s is None:
            from transformers import get_linear_schedule_with_warmup

            self.scheduler = get_linear_schedule_with_warmup(
                self.optimizer, round(settings.warmup_ratio * self.total_steps), self.total_steps
            )
        else:  # Cramming's budget-aware schedule: progress = training time spent / budget (_budget_fraction)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda _: warmup_then_decay(self.progress.budget_fraction, settings.warmup_ratio))
        self.mask_generator = torch.Generator(device=self.device)
        self.checkpoint_path = Path(checkpoint_dir, "last.pt")
        self.fingerprint = fingerprint(settings, self.meta, self.world)
        self.tracker = Tracker(self.name, None, is_main=self.accelerator.is_main_process)
        self.startup_s: float | None = None

    def make_objective(self) -> nn.Module:
        """The loss module; a subclass may return a variant (the training benchmark's levers)."""
        return MaskedLMObjective(self.model)

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer; a subclass may return a variant (the training benchmark's levers)."""
        return build_optimizer(self.model, self.settings, fused=self.device.type == "cuda")

    @property
    def objective(self) -> nn.Module:
        """The prepared masked-LM loss module the loop trains."""
        return self.trained

    # -- what the loop asks of the stage

    def train(self, stop_flag: dict) -> None:
        run_loop(self, stop_flag)

    def saved_module(self) -> nn.Module:
        return self.model

    def checkpoint(self) -> None:
        super().checkpoint()
        if self.accelerator.is_main_process:
            write_rows_csv(self.checkpoint_path.with_name("perplexity_so_far.csv"), self.progress.rows, CSV_COLUMNS)

    def autocast(self):
        return autocast(self.device.type, self.precision)

    def micro_batches(self, epoch: int, step: int):
        """This rank's masked micro-batches for one optimizer step."""
        # Masks depend only on (seed, rank, step): the same after a resume as without one.
        self.mask_generator.manual_seed(_seed(self.settings) + 7919 * self.rank + 104729 * self.progress.global_step)
        for micro in range(self.settings.grad_accum):
            yield self.masker(self.loader.batch(epoch, step, micro), self.mask_generator)

    def loss_of(self, batch) -> torch.Tensor:
        return self.trained(batch.inputs, batch.positions, batch.targets)

    def log_progress(self, label: str = "", eta_s: float | None = None) -> None:
        left = None if self.time_budget_s is None else self.time_budget_s - self.train_seconds()
        super().log_progress(label=f"epoch {self.progress.epoch + 1}", eta_s=left)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean masked-LM loss over the fixed validation masks (this rank's share, then summed)."""
        self.trained.eval()
        bs = self.settings.batch_size
        starts = range(self.rank * bs, len(self.eval_batch.inputs), bs * self.world)
        loss_sum, count = masked_lm_loss_sum(self.trained, self.eval_batch, starts, bs, self.device, self.autocast)
        self.trained.train()
        loss_sum, count = self.accelerator.reduce(torch.stack([loss_sum, count]), reduction="sum")
        return (loss_sum / count).item()

    def make_row(self, kind: str, eval_loss: float, eval_s: float) -> tuple[dict, dict]:
        """A perplexity row: its epoch is fractional (steps done / steps per epoch); tokens/s is the
        epoch's training throughput so far."""
        p = self.progress
        epochs = round(p.global_step / self.steps_per_epoch, 4)
        row = {
            "epoch": int(epochs) if epochs == int(epochs) else epochs,
            "step": p.global_step,
            "train_loss": self.epoch_train_loss(),
            "eval_loss": eval_loss,
            "perplexity": math.exp(min(eval_loss, 50.0)),
            "tokens_per_s": p.epoch_seen / max(p.epoch_train_s, 1e-9),
            "elapsed_s": p.elapsed_s,
            "kind": kind,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return row, {"eval_loss": eval_loss, "perplexity": row["perplexity"]}

    # -- budget

    def out_of_budget(self) -> bool:
        return self.progress.budget_fraction >= 1.0

    def advance_schedule(self) -> None:
        if self.time_budget_s is not None:
            p = self.progress
            p.budget_fraction = self._budget_fraction(self.train_seconds(), p.global_step + 1)

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

    def note(self) -> str:
        if self.time_budget_s is None:
            return ""
        left = max(0.0, self.time_budget_s - self.progress.train_s)
        return f"; {format_eta(left)} of the {self.settings.time_budget:g}-minute budget left"

    def stopped_by(self) -> str:
        s, p = self.settings, self.progress
        if self.time_budget_s is not None and p.train_s >= self.time_budget_s:
            return "time_budget"
        if s.token_budget:
            return "token_budget"
        return "max_steps" if s.max_steps else "epochs"


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
            "tokens_seen": trainer.progress.seen,
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
             trainer.world, describe_plan(settings, trainer.total_steps, trainer.steps_per_epoch), sum(p.numel() for p in trainer.model.parameters()),
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
