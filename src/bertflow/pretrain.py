"""Pretraining stage: BERT masked-LM from scratch, perplexity on fixed masks after every epoch.

The loop follows transformers' run_mlm_no_trainer.py (Accelerate handles device placement
and DDP), with the levers that make it faster than `Trainer` + the MLM collator:
packed blocks with no padding (so SDPA runs without a mask), masking on the device, the MLM
head evaluated only at masked positions, fused AdamW on GPU, data resident on the device and
no host synchronisation between log points.

Interruption: a checkpoint (model, optimizer, scheduler, RNG, progress) is written atomically
after every epoch (and every `checkpoint_every_steps`), and on SIGTERM/SIGINT before exiting.
Rerunning the stage resumes from it and ends with the same number of steps.

Run under a launcher as `python -m bertflow.pretrain SPEC.json` (see `bertflow.distributed`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import load_blocks, tokenizer_fingerprint
from .errors import ConfigError, DataError, ResourceError
from .io import write_json
from .masking import Masker, fixed_eval_masks
from .presets import architecture
from .provenance import environment_info
from .tokenizer import load_tokenizer

log = logging.getLogger(__name__)

CSV_COLUMNS = ["epoch", "step", "train_loss", "eval_loss", "perplexity", "tokens_per_s", "elapsed_s"]
# Settings that do not change what is computed: a checkpoint made under other values still resumes.
_NOT_FINGERPRINTED = {"log_every_steps", "checkpoint_every_steps", "compile", "compile_mode"}


@dataclass
class Settings:
    """The `pretrain` config section (see config/config.schema.yaml for meanings)."""

    preset: str | None = "tiny"
    model: dict = field(default_factory=dict)
    seq_len: int = 128
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    grad_accum: int = 1
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    adam_beta2: float = 0.98
    max_grad_norm: float | None = 1.0
    mlm_probability: float = 0.15
    precision: str = "auto"
    attention: str = "sdpa"
    compile: bool | str = "auto"
    compile_mode: str = "reduce-overhead"
    max_eval_blocks: int | None = 2000
    log_every_steps: int = 50
    checkpoint_every_steps: int = 0
    seed: int | None = None
    masked_only_head: bool = True
    fused_adamw: bool | None = None  # None: fused when on CUDA

    @classmethod
    def from_config(cls, section: dict) -> "Settings":
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known - {"num_processes"}
        if unknown:
            raise ConfigError(f"pretrain: unknown keys {sorted(unknown)}")
        return cls(**{k: v for k, v in section.items() if k in known})


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


def build_optimizer(model: nn.Module, settings: Settings, on_cuda: bool) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights, as in BERT."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    fused = on_cuda if settings.fused_adamw is None else settings.fused_adamw
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, settings.adam_beta2),
        eps=1e-6,
        fused=fused,
    )


def _seed(settings: Settings) -> int:
    return 0 if settings.seed is None else settings.seed


def resolve_device(requested: str) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ResourceError(
            "device: 'cuda' was requested but no GPU is visible (torch.cuda.is_available() is False); "
            "set device: auto or cpu, or run on a GPU node"
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def make_accelerator(device: str):
    """Accelerate places the model and wraps DDP; bf16 autocast is ours (see `autocast`), because
    Accelerate's mixed-precision setting is fixed once per process."""
    from accelerate import Accelerator

    return Accelerator(cpu=device == "cpu")


# --------------------------------------------------------------------------- checkpoints


def fingerprint(settings: Settings, meta: dict, world_size: int) -> str:
    relevant = {k: v for k, v in asdict(settings).items() if k not in _NOT_FINGERPRINTED}
    blob = json.dumps({"settings": relevant, "blocks": meta, "world": world_size}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill during the save keeps the previous checkpoint


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict | None:
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != expected_fingerprint:
        stale = path.with_name(f"stale-{int(time.time())}-{path.name}")
        os.replace(path, stale)
        log.warning("checkpoint %s was made with other settings or data; kept as %s, starting fresh", path, stale)
        return None
    return state


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


# --------------------------------------------------------------------------- the loop


@dataclass
class Progress:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    elapsed_s: float = 0.0
    tokens_seen: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
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


class Pretrainer:
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
        self.train_blocks = _place(blocks["train"], self.device)
        eval_blocks = blocks["validation"][: settings.max_eval_blocks]
        self.eval_batch = fixed_eval_masks(eval_blocks, self.masker, seed=_seed(settings) + 1)

        self.global_batch = settings.batch_size * self.world * settings.grad_accum
        self.steps_per_epoch = len(self.train_blocks) // self.global_batch
        if self.steps_per_epoch == 0:
            raise DataError(
                f"{meta.get('path', 'blocks')}: {len(self.train_blocks)} training blocks are fewer than one global batch "
                f"({settings.batch_size} x {self.world} processes x {settings.grad_accum} accumulation); "
                "add text or lower pretrain.batch_size"
            )
        self.total_steps = settings.max_steps or settings.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)

        objective = MaskedLMObjective(self.model, settings.masked_only_head)
        self.compiled = settings.compile is True or (
            settings.compile == "auto" and self.device.type == "cuda" and self.world == 1)
        if self.compiled:
            objective = torch.compile(objective, mode=settings.compile_mode)
        self.optimizer = build_optimizer(self.model, settings, self.device.type == "cuda")
        self.objective, self.optimizer = self.accelerator.prepare(objective, self.optimizer)
        from transformers import get_linear_schedule_with_warmup

        # Stepped by hand once per optimizer step (Accelerate's wrapper would step it per process).
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, round(settings.warmup_ratio * self.total_steps), self.total_steps
        )
        self.mask_generator = torch.Generator(device=self.device)
        self.checkpoint_path = Path(checkpoint_dir, "last.pt")
        self.fingerprint = fingerprint(settings, self.meta, self.world)
        self.progress = Progress()
        self._epoch_seconds, self._epoch_tokens = 0.0, 0
        self._order = (None, None)

    # -- state

    def resume(self) -> bool:
        state = load_checkpoint(self.checkpoint_path, self.fingerprint)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        self.progress = Progress(**state["progress"])
        log.info(
            "resumed from %s: epoch %d, step %d of %d",
            self.checkpoint_path, self.progress.epoch + 1, self.progress.global_step, self.total_steps,
        )
        return True

    def checkpoint(self) -> None:
        if self.accelerator.is_main_process:
            save_checkpoint(
                self.checkpoint_path,
                {
                    "fingerprint": self.fingerprint,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
                    },
                    "progress": asdict(self.progress),
                },
            )
            write_progress_csv(self.checkpoint_path.with_name("perplexity_so_far.csv"), self.progress.rows)
        self.accelerator.wait_for_everyone()

    # -- steps

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """A fixed, seeded shuffle per epoch (the same on every rank and after a resume)."""
        if self._order[0] != epoch:
            generator = torch.Generator().manual_seed(_seed(self.settings) * 1000 + epoch)
            order = torch.randperm(len(self.train_blocks), generator=generator)
            self._order = (epoch, order.to(self.train_blocks.device))
        return self._order[1]

    def micro_batches(self, epoch: int, step: int):
        """This rank's micro-batches for one optimizer step."""
        order, bs = self.epoch_order(epoch), self.settings.batch_size
        for micro in range(self.settings.grad_accum):
            start = ((step * self.settings.grad_accum + micro) * self.world + self.rank) * bs
            yield self.train_blocks.index_select(0, order[start : start + bs]).to(self.device, non_blocking=True)

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
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean masked-LM loss over the fixed validation masks (this rank's share, then summed)."""
        self.objective.eval()
        batch, bs = self.eval_batch, self.settings.batch_size
        loss_sum = torch.zeros((), device=self.device)
        count = torch.zeros((), device=self.device)
        for start in range(self.rank * bs, len(batch.inputs), bs * self.world):
            sl = slice(start, start + bs)
            n = batch.targets[sl].numel()
            with self.autocast():
                loss = self.objective(*(t[sl].to(self.device) for t in (batch.inputs, batch.positions, batch.targets)))
            loss_sum += loss.float() * n
            count += n
        self.objective.train()
        loss_sum, count = self.accelerator.reduce(torch.stack([loss_sum, count]), reduction="sum")
        return (loss_sum / count).item()

    def train(self, stop_flag: dict) -> None:
        s, p = self.settings, self.progress
        self.objective.train()
        while p.global_step < self.total_steps:
            epoch_start = time.perf_counter()
            steps_this_epoch = min(self.steps_per_epoch, self.total_steps - p.epoch * self.steps_per_epoch)
            running = torch.zeros((), device=self.device)
            done_before = p.step_in_epoch
            for step in range(p.step_in_epoch, steps_this_epoch):
                running += self.optimizer_step(p.epoch, step)
                p.step_in_epoch, p.global_step = step + 1, p.global_step + 1
                if p.global_step % s.log_every_steps == 0:
                    log.info("epoch %d step %d/%d loss %.4f lr %.2e", p.epoch + 1, p.global_step,
                             self.total_steps, running.item() / ((step + 1 - done_before) * s.grad_accum),
                             self.scheduler.get_last_lr()[0])
                if self._should_stop(stop_flag, p.global_step) or (
                    s.checkpoint_every_steps and p.global_step % s.checkpoint_every_steps == 0
                ):
                    self._fold_running(running, step + 1 - done_before, epoch_start)
                    running, done_before, epoch_start = torch.zeros_like(running), step + 1, time.perf_counter()
                    self.checkpoint()
                    if self._should_stop(stop_flag, p.global_step):
                        raise StopRequested(f"stopped at step {p.global_step}; checkpoint {self.checkpoint_path}")
            self._fold_running(running, steps_this_epoch - done_before, epoch_start)
            self._finish_epoch()

    def _should_stop(self, stop_flag: dict, step: int) -> bool:
        if self.world == 1:
            return stop_flag["stop"]
        if step % self.settings.log_every_steps:
            return False  # ranks agree only at log points, to avoid a collective every step
        flag = torch.tensor(float(stop_flag["stop"]), device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item())

    def _fold_running(self, running: torch.Tensor, steps: int, since: float) -> None:
        """Move this stretch's loss sum, tokens and time into the progress record (one host sync)."""
        p = self.progress
        if steps > 0:
            p.epoch_loss_sum += self.accelerator.reduce(running.detach().clone(), reduction="sum").item()
            p.epoch_loss_count += steps * self.settings.grad_accum * self.world
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - since
        tokens = steps * self.global_batch * self.settings.seq_len
        p.elapsed_s += seconds
        p.tokens_seen += tokens
        # Throughput of what this process trained (an epoch may span a resume).
        self._epoch_seconds += seconds
        self._epoch_tokens += tokens

    def _finish_epoch(self) -> None:
        p = self.progress
        eval_start = time.perf_counter()
        eval_loss = self.evaluate()
        p.elapsed_s += time.perf_counter() - eval_start
        row = {
            "epoch": p.epoch + 1,
            "step": p.global_step,
            "train_loss": p.epoch_loss_sum / max(p.epoch_loss_count, 1),
            "eval_loss": eval_loss,
            "perplexity": math.exp(min(eval_loss, 50.0)),
            "tokens_per_s": self._epoch_tokens / max(self._epoch_seconds, 1e-9),
            "elapsed_s": p.elapsed_s,
        }
        p.rows.append(row)
        log.info("epoch %d: train loss %.4f, eval loss %.4f, perplexity %.2f, %.0f tokens/s",
                 row["epoch"], row["train_loss"], eval_loss, row["perplexity"], row["tokens_per_s"])
        p.epoch, p.step_in_epoch, p.epoch_loss_sum, p.epoch_loss_count = p.epoch + 1, 0, 0.0, 0
        self._epoch_seconds, self._epoch_tokens = 0.0, 0
        self.checkpoint()


def _place(blocks: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Keep the blocks on the GPU when they fit comfortably (no per-step copies), else pinned RAM."""
    if device.type != "cuda":
        return blocks
    nbytes = blocks.numel() * blocks.element_size()
    if nbytes < 0.1 * torch.cuda.get_device_properties(device).total_memory:
        return blocks.to(device)
    return blocks.pin_memory()


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


def write_progress_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def plot_perplexity(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["epoch"] for r in rows], [r["perplexity"] for r in rows], marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity")
    ax.set_yscale("log")
    ax.set_title("Masked-LM perplexity (fixed validation masks)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_final(trainer: Pretrainer, tokenizer, out: dict, started: float) -> None:
    """Model + tokenizer, perplexity CSV and plot, and the run's info JSON (main process only)."""
    model_dir = Path(out["model"])
    tmp_dir = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.model.save_pretrained(tmp_dir)  # safetensors
    tokenizer.save_pretrained(tmp_dir)
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp_dir, model_dir)
    rows = trainer.progress.rows
    write_progress_csv(Path(out["perplexity"]), rows)
    plot_perplexity(rows, out["plot"])
    write_json(
        out["info"],
        {
            "device": str(trainer.device),
            "precision": trainer.precision,
            "compiled": trainer.compiled,
            "processes": trainer.world,
            "wall_time_s": trainer.progress.elapsed_s,
            "stage_wall_time_s": time.time() - started,
            "tokens_seen": trainer.progress.tokens_seen,
            "steps": trainer.progress.global_step,
            "epochs": len(rows),
            "steps_per_epoch": trainer.steps_per_epoch,
            "global_batch_blocks": trainer.global_batch,
            "final_perplexity": rows[-1]["perplexity"],
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "blocks": trainer.meta,
            "settings": asdict(trainer.settings),
            "environment": environment_info(),
        },
    )


def pretrain(*, tokenizer_dir: str, blocks_dir: str, outputs: dict, train: dict, device: str, seed: int,
             checkpoint_dir: str) -> dict:
    """Stage entry: train (resuming when a matching checkpoint exists), then write the outputs."""
    started = time.time()
    settings = Settings.from_config({**train, "seed": seed})
    tokenizer = load_tokenizer(tokenizer_dir)
    meta, blocks = load_blocks(blocks_dir)
    blocks = {split: torch.from_numpy(np.asarray(rows, dtype=np.int64)) for split, rows in blocks.items()}
    check_blocks_match(meta, tokenizer, tokenizer_dir, blocks_dir, settings.seq_len)
    trainer = Pretrainer(settings, vocab=Vocab.of(tokenizer), blocks=blocks, meta={**meta, "path": blocks_dir},
                         device=device, checkpoint_dir=checkpoint_dir)
    log.info("%s on %s (%s%s), %d processes; %d steps (%d epochs of %d); %d parameters",
             settings.preset or "custom", trainer.device, trainer.precision,
             f", compiled {settings.compile_mode}" if trainer.compiled else "", trainer.world, trainer.total_steps,
             trainer.epochs, trainer.steps_per_epoch, sum(p.numel() for p in trainer.model.parameters()))
    trainer.resume()
    with stop_on_signals() as stop_flag:
        trainer.train(stop_flag)
    if trainer.accelerator.is_main_process:
        save_final(trainer, tokenizer, outputs, started)
        # The outputs now hold everything; a stale checkpoint would wrongly "resume" a later rerun
        # (e.g. after a code change) straight to the end.
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return {"rows": trainer.progress.rows, "steps": trainer.progress.global_step}


def benchmark_steps(
    blocks: torch.Tensor,
    model_config,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float = 5e-4,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    attention: str = "sdpa",
    compile: bool = False,
    compile_mode: str = "reduce-overhead",
    masked_only_head: bool = True,
    fused_adamw: bool | None = None,
    mlm_probability: float = 0.15,
    warmup_steps: int = 3,
    mask_token_id: int = 4,
    special_ids: tuple = (0, 1, 2, 3, 4),
) -> dict:
    """Time `steps` optimizer steps of this stage's loop (the code `pretrain` runs) on `blocks`.

    `warmup_steps` untimed steps first (allocator, autotuning, torch.compile). Returns tokens/s,
    peak memory (CUDA max allocated on GPU, process peak RSS on CPU), per-step losses and wall time.
    """
    import resource

    settings = Settings(
        preset=None,
        model={k: getattr(model_config, k) for k in (
            "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings")},
        seq_len=blocks.shape[1], epochs=1, max_steps=steps + warmup_steps, batch_size=batch_size,
        learning_rate=learning_rate, warmup_ratio=0.0, precision=precision, attention=attention, compile=compile,
        compile_mode=compile_mode, masked_only_head=masked_only_head, fused_adamw=fused_adamw,
        mlm_probability=mlm_probability, seed=seed, max_eval_blocks=1, log_every_steps=10**9,
    )
    vocab = Vocab(model_config.vocab_size, model_config.pad_token_id or 0, mask_token_id, tuple(special_ids))
    trainer = Pretrainer(settings, vocab=vocab, blocks={"train": blocks, "validation": blocks[:1]}, meta={},
                         device=device, checkpoint_dir=os.devnull)
    per_epoch = trainer.steps_per_epoch
    for step in range(warmup_steps):
        trainer.optimizer_step(0, step % per_epoch)
        trainer.progress.global_step += 1
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    losses = []
    start = time.perf_counter()
    for step in range(warmup_steps, warmup_steps + steps):
        losses.append(trainer.optimizer_step(step // per_epoch, step % per_epoch))
        trainer.progress.global_step += 1
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if trainer.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    losses = torch.stack(losses).float().cpu().tolist()
    return {
        "tokens_per_s": steps * batch_size * settings.seq_len / wall,
        "peak_memory_bytes": peak,
        "losses": losses,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "wall_s": wall,
        "device": str(trainer.device),
        "precision": trainer.precision,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m bertflow.pretrain SPEC.json`: the entry a distributed launcher starts per process."""
    from .distributed import entry_point

    return entry_point(pretrain, argv, exit_codes={StopRequested: 143})


if __name__ == "__main__":
    sys.exit(main())
