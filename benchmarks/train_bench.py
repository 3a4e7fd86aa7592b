"""Training-speed benchmark: our pretraining step against the loop a user writes today.

    python -m benchmarks.train_bench --presets tiny mini --seq-lens 128 --batch-size 32 --steps 20 --out DIR

Same `BertConfig`, same packed blocks, same global batch, same number of steps, same precision:

* **baseline**: transformers `Trainer` + `DataCollatorForLanguageModeling`, set up as
  examples/pytorch/language-modeling/run_mlm.py does for pre-grouped blocks (examples carry
  input_ids, token_type_ids, attention_mask and special_tokens_mask; default collator, sampler
  and data loader; `TrainingArguments` defaults, which in transformers 5 with torch >= 2.8 mean
  fused AdamW, and SDPA attention, the model default). `--bf16` is passed when ours runs bf16.
* **ours**: `benchmark_steps` below, which drives the `pretrain` stage's `Pretrainer`, with the
  stage's defaults for the device (bf16 autocast + torch.compile on CUDA, fp32 eager on CPU).

Each run is a fresh Python process (unless `--in-process`), so its peak memory is its own:
CUDA `max_memory_allocated` after the warm-up steps on a GPU, the process's peak RSS on CPU
(reported with the RSS before the model was built, to show the growth). Model FLOPs
utilisation = tokens/s x `flops_per_token` / the device's peak (`--peak-tflops`, a table of
known GPUs, or on CPU the best fp32 matmul rate measured at the start and after every run).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository on sys.path, to import `benchmarks`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bertflow.errors import ConfigError, DataError, PipelineError
from benchmarks.pairs import ratio_summary, run_worker

# Dense (no sparsity) tensor-core peaks in TFLOP/s from the vendors' data sheets, keyed by a
# substring of `torch.cuda.get_device_name()`; the first match wins (so "H100 PCIe" before "H100").
KNOWN_PEAK_TFLOPS = {
    "H100 PCIe": {"bf16": 756.0, "fp32": 378.0},
    "H100 NVL": {"bf16": 835.0, "fp32": 418.0},
    "H100": {"bf16": 989.4, "fp32": 494.7},  # SXM; fp32 runs use TF32 tensor cores
    "H200": {"bf16": 989.4, "fp32": 494.7},
    "A100": {"bf16": 312.0, "fp32": 156.0},
    "L40S": {"bf16": 362.0, "fp32": 183.0},
    "L4": {"bf16": 121.0, "fp32": 60.0},
}
BASELINE = "baseline: Trainer + MLM collator"
OURS = "ours"


# --------------------------------------------------------------------------- FLOPs and peaks


def flops_per_token(config, seq_len: int, masked_fraction_for_head: float = 1.0) -> float:
    """Training FLOPs per token of a BertForMaskedLM: 6N + attention, counting the vocabulary projection.

    N = the matmul weights a token passes through: per layer Q, K, V, O (4h^2) and the feed-forward
    (2hi); the MLM head's transform (h^2) and vocabulary projection (hV) count only at the share
    of positions where the head runs (1.0 when computed everywhere, k/L when only at the masked
    positions). Attention scores and the weighted sum add 2 x L x h multiply-adds per token and
    layer (bidirectional: no causal halving). x2 FLOPs per multiply-add, x3 for forward + backward.
    Embedding lookups, biases, LayerNorm, softmax and GELU are left out, as usual.
    """
    h, layers = config.hidden_size, config.num_hidden_layers
    encoder = layers * (4 * h * h + 2 * h * config.intermediate_size)
    head = h * h + h * config.vocab_size
    attention = layers * 2 * seq_len * h
    return 3 * 2 * (encoder + masked_fraction_for_head * head + attention)


def masked_fraction(seq_len: int, mlm_probability: float) -> float:
    """Share of positions our loop runs the head on: exactly round(L x p) per block (see masking.py)."""
    return max(1, round(seq_len * mlm_probability)) / seq_len


def measured_matmul_flops(device: str, dtype, size: int = 1024, repeats: int = 10) -> float:
    """Best FLOP/s of a square matmul on `device` with the current thread count (the CPU 'peak')."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats + 1):  # the first one warms up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def device_peak_flops(device: str, precision: str, override_tflops: float | None) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from) for MFU."""
    import torch

    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        for key, peaks in KNOWN_PEAK_TFLOPS.items():
            if key in name:
                return peaks[precision] * 1e12, f"data sheet, {key} dense {precision}"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        return measured_matmul_flops("cuda", dtype, size=8192), f"measured {precision} matmul on {name}"
    threads = torch.get_num_threads()
    return measured_matmul_flops("cpu", torch.float32), f"measured fp32 matmul, {threads} thread(s)"


# --------------------------------------------------------------------------- data


def random_blocks(n_blocks: int, seq_len: int, vocab_size: int, seed: int):
    """Uniform token ids above the five BERT special tokens: the shape of real blocks, no text."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, vocab_size, (n_blocks, seq_len), generator=generator)


def text_blocks(text_file: str, tokenizer_dir: str, seq_len: int):
    """Pack a text file with a saved tokenizer, as the tokenize_corpus stage does (no `datasets`)."""
    import torch

    from bertflow.blocks import text_blocks as pack_text

    blocks = pack_text(tokenizer_dir, text_file, seq_len)
    if not len(blocks):
        raise DataError(f"{text_file}: too little text for one block of {seq_len} tokens")
    return torch.from_numpy(blocks)


def generated_text(workdir: str, num_sentences: int, vocab_size: int, seed: int) -> tuple[str, str]:
    """The offline demo corpus and a WordPiece tokenizer trained on it: (text file, tokenizer dir)."""
    from bertflow.synthetic import generate_corpus
    from bertflow.tokenizer import BERT_ROLES, train_tokenizer

    text = Path(workdir, "corpus.txt")
    text.write_text("\n".join(generate_corpus(num_sentences, seed)) + "\n", encoding="utf-8")
    tokenizer_dir = str(Path(workdir, "tokenizer"))
    train_tokenizer(train_file=str(text), validation_file=str(text), out_dir=tokenizer_dir,
                    out_report=str(Path(workdir, "tokenizer.json")), vocab_size=vocab_size, lowercase=True,
                    min_frequency=2, special_tokens=list(BERT_ROLES.values()), model_max_length=512)
    return str(text), tokenizer_dir


def synthetic_tokenizer(vocab_size: int):
    """A BERT tokenizer with `vocab_size` entries ([PAD]=0 ... [MASK]=4, then filler words): what the
    collator needs (mask id, vocabulary size, padding) when the blocks are random ids.

    Built from a `tokenizers` WordPiece model holding the vocabulary: transformers 5 ignores
    `BertTokenizerFast(vocab_file=...)` and returns a 5-entry tokenizer, which made the baseline
    collator draw its random replacement tokens from 5 ids."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - 5)]
    backend = Tokenizer(models.WordPiece({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer = BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    if len(tokenizer) != vocab_size:
        raise PipelineError(f"synthetic tokenizer has {len(tokenizer)} entries, expected {vocab_size}")
    return tokenizer


# --------------------------------------------------------------------------- the two loops


def run_mlm_examples(blocks, special_ids) -> list[dict]:
    """Blocks as run_mlm.py's `group_texts` leaves them: python lists of the tokenizer's four columns."""
    import torch

    special = torch.isin(blocks, torch.tensor(sorted(special_ids)))
    zeros, ones = [0] * blocks.shape[1], [1] * blocks.shape[1]
    return [
        {"input_ids": ids, "token_type_ids": zeros, "attention_mask": ones, "special_tokens_mask": mask}
        for ids, mask in zip(blocks.tolist(), special.int().tolist())
    ]


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
    model_overrides: dict | None = None,
    mlm_probability: float = 0.15,
    warmup_steps: int = 3,
    mask_token_id: int = 4,
    special_ids: tuple = (0, 1, 2, 3, 4),
    eval_blocks=None,
) -> dict:
    """Time `steps` optimizer steps of the pretraining stage's loop (`Pretrainer.optimizer_step`) on `blocks`.

    `warmup_steps` untimed steps first (allocator, autotuning, torch.compile). Returns tokens/s,
    peak memory (CUDA max allocated on GPU, process peak RSS on CPU), per-step losses and wall time,
    and, given `eval_blocks`, the masked-LM loss on them after the timed steps (`heldout_loss`).
    `model_overrides`: BertConfig fields over the preset's (`pretrain.model`, e.g. dropout).
    `masked_only_head`, `fused_adamw` (None: fused on CUDA): two levers the stage always has on
    (`lever_pretrainer`).
    """
    import resource

    import torch

    from bertflow.pretrain import Settings, Vocab

    settings = Settings.from_config(dict(
        preset=None,
        model={**{k: getattr(model_config, k) for k in (
            "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings")},
            **(model_overrides or {})},
        seq_len=blocks.shape[1], epochs=1, max_steps=steps + warmup_steps, batch_size=batch_size,
        learning_rate=learning_rate, warmup_ratio=0.0, precision=precision, attention=attention, compile=compile,
        compile_mode=compile_mode,
        mlm_probability=mlm_probability, seed=seed, max_eval_blocks=1, log_every_steps=10**9,
    ))
    vocab = Vocab(model_config.vocab_size, model_config.pad_token_id or 0, mask_token_id, tuple(special_ids))
    trainer = lever_pretrainer(masked_only_head, fused_adamw)(settings, vocab=vocab, blocks={"train": blocks, "validation": blocks[:1]}, meta={},
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
        "final_loss": tail_mean(losses),
        "eval_loss": None if eval_blocks is None else heldout_loss(trainer.model, eval_blocks, vocab, mlm_probability,
                                                                   seed, batch_size, trainer.autocast),
        "wall_s": wall,
        "device": str(trainer.device),
        "precision": trainer.precision,
    }


def lever_pretrainer(masked_only_head: bool, fused_adamw: bool | None) -> type:
    """The stage's `Pretrainer` with its MLM head at the masked positions only (or at all, as
    BertForMaskedLM computes it) and fused AdamW on CUDA (or as `fused_adamw` says)."""
    from bertflow.pretrain import MaskedLMObjective, Pretrainer, build_optimizer

    class LeverPretrainer(Pretrainer):
        def make_objective(self):
            return MaskedLMObjective(self.model, masked_only_head)

        def make_optimizer(self):
            fused = self.device.type == "cuda" if fused_adamw is None else fused_adamw
            return build_optimizer(self.model, self.settings, fused=fused)

    return LeverPretrainer


def heldout_loss(model, blocks, vocab, mlm_probability: float, seed: int, batch_size: int, autocast=None) -> float:
    """Masked-LM loss of `model` on held-out `blocks` with masks drawn once from `seed` (the same
    positions for every run of an invocation) and dropout off, as the stage evaluates: the
    loss-curve check of a lever that changes the training loss's own noise (dropout)."""
    import contextlib

    from bertflow.masking import Masker, fixed_eval_masks
    from bertflow.pretrain import MaskedLMObjective, masked_lm_loss_sum

    masker = Masker(seq_len=blocks.shape[1], mlm_probability=mlm_probability, mask_id=vocab.mask_id,
                    vocab_size=vocab.size, special_ids=vocab.special_ids)
    batch = fixed_eval_masks(blocks, masker, seed=seed + 1)
    objective, device = MaskedLMObjective(model).eval(), next(model.parameters()).device
    loss_sum, count = masked_lm_loss_sum(objective, batch, range(0, len(blocks), batch_size), batch_size, device,
                                         autocast or contextlib.nullcontext)
    model.train()
    return (loss_sum / count).item()


def trainer_steps(blocks, model_config, *, steps: int, batch_size: int, learning_rate: float, seed: int,
                  device: str, precision: str, tokenizer, mlm_probability: float = 0.15,
                  warmup_steps: int = 3, eval_blocks=None) -> dict:
    """Time `steps` optimizer steps of `Trainer` + `DataCollatorForLanguageModeling` (after `warmup_steps`)."""
    import resource

    import torch
    from transformers import (BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainerCallback,
                              TrainingArguments)

    on_cuda = device == "cuda"
    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup_steps, warmup_steps + steps):
                if on_cuda:
                    torch.cuda.synchronize()
                    if state.global_step == warmup_steps:
                        torch.cuda.reset_peak_memory_stats()
                marks[state.global_step] = time.perf_counter()

    class LossRecorder(Trainer):
        """Keeps each step's loss as a device tensor (no extra host sync) for the loss comparison."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.step_losses = []

        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            self.step_losses.append(loss.detach())
            return loss

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(seed)  # the same initial weights as ours (built the same way after the same seed)
        model = BertForMaskedLM(model_config)
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=batch_size, max_steps=warmup_steps + steps,
            learning_rate=learning_rate, seed=seed, bf16=precision == "bf16", tf32=on_cuda or None,
            use_cpu=not on_cuda, save_strategy="no", report_to=[], disable_tqdm=True,
        )
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        trainer = LossRecorder(model=model, args=args, data_collator=collator, callbacks=[Clock()],
                               train_dataset=run_mlm_examples(blocks, tokenizer.all_special_ids))
        trainer.train()
        losses = torch.stack(trainer.step_losses[warmup_steps:]).float().cpu().tolist()
        if eval_blocks is not None:
            from bertflow.pretrain import Vocab
            from bertflow.runtime import autocast

            eval_loss = heldout_loss(model, eval_blocks, Vocab.of(tokenizer), mlm_probability, seed, batch_size,
                                     lambda: autocast(device, precision))
    wall = marks[warmup_steps + steps] - marks[warmup_steps]
    peak = torch.cuda.max_memory_allocated() if on_cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "tokens_per_s": steps * batch_size * blocks.shape[1] / wall,
        "peak_memory_bytes": peak,
        "losses": losses,
        "final_loss": tail_mean(losses),
        "eval_loss": eval_loss if eval_blocks is not None else None,
        "wall_s": wall,
        "device": device,
        "precision": precision,
        "attention": model.config._attn_implementation,
        "optimizer": str(args.optim.value if hasattr(args.optim, "value") else args.optim),
    }


def tail_mean(losses: list[float], n: int = 10) -> float:
    """The final loss: mean of the last `n` steps' losses (one step's loss is too noisy)."""
    tail = losses[-n:]
    return sum(tail) / len(tail)


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One measurement: the baseline, or ours with some settings changed from the stage's defaults."""

    name: str
    kind: str  # "baseline" | "ours"
    preset: str
    seq_len: int
    options: dict = field(default_factory=dict)  # benchmark_steps keyword overrides


def ours_defaults(device: str, threads: int = 1) -> dict:
    """What the pretrain stage runs by default on `device` (pretrain.compile: auto, fused_adamw: None,
    the preset's BertConfig dropout 0.1, the torch threads the stage is granted)."""
    on_cuda = device == "cuda"
    return {"attention": "sdpa", "compile": on_cuda, "compile_mode": "reduce-overhead",
            "masked_only_head": True, "fused_adamw": on_cuda, "model_overrides": {}, "threads": threads}


def levers(device: str, threads: int = 1) -> dict[str, dict]:
    """Each lever of ours flipped alone (label -> override); bf16 autocast is a lever on CUDA only,
    the torch thread count (1 <-> 2) on CPU only. `threads`: what ours runs with (the process's)."""
    defaults = ours_defaults(device, threads)
    flips = {"eager attention (not SDPA)": {"attention": "eager"}}
    if device == "cuda":
        flips["fp32/TF32 (no bf16 autocast)"] = {"precision": "fp32"}
    flips["no torch.compile" if defaults["compile"] else "+ torch.compile"] = {"compile": not defaults["compile"]}
    flips["MLM head at all positions"] = {"masked_only_head": False}
    flips["unfused AdamW" if defaults["fused_adamw"] else "+ fused AdamW"] = {"fused_adamw": not defaults["fused_adamw"]}
    # pretrain.model overrides. With attention dropout > 0, CPU SDPA falls back to its math kernel
    # (scores materialised, then dropout); at 0 it takes the fused flash kernel (torch's sdp_utils_cpp).
    flips["attention dropout 0"] = {"model_overrides": {"attention_probs_dropout_prob": 0.0}}
    flips["no dropout (hidden + attention 0)"] = {"model_overrides": {"hidden_dropout_prob": 0.0,
                                                                      "attention_probs_dropout_prob": 0.0}}
    if device == "cpu":
        other = 1 if threads > 1 else 2
        flips[f"{other} torch thread{'s' if other > 1 else ''}"] = {"threads": other}
    return flips


def plan(presets: list[str], seq_lens: list[int], device: str, *, baseline: bool, with_levers: bool,
         only: list[str] | None = None, threads: int = 1) -> list[Run]:
    """Runs per (preset, seq_len): baseline, ours, then the levers (those whose label contains
    one of `only`, case-insensitive, when given)."""
    chosen = {label: change for label, change in levers(device, threads).items()
              if not only or any(word.lower() in label.lower() for word in only)}
    runs = []
    for preset in presets:
        for seq_len in seq_lens:
            if baseline:
                runs.append(Run(BASELINE, "baseline", preset, seq_len))
            runs.append(Run(OURS, "ours", preset, seq_len))
            if with_levers:
                runs += [Run(label, "ours", preset, seq_len, change) for label, change in chosen.items()]
    return runs


@dataclass
class Common:
    """What every run of one invocation shares."""

    steps: int
    batch_size: int
    learning_rate: float
    seed: int
    device: str
    precision: str
    mlm_probability: float
    warmup_steps: int
    vocab_size: int
    max_position_embeddings: int
    tokenizer_dir: str | None  # None: a synthetic vocabulary (random blocks)
    eval_blocks: int = 0  # the last this many blocks are held out for the loss after training
    threads: int = 1  # torch threads of ours (CPU), unless a lever sets its own


def model_config(preset: str, common: Common):
    from transformers import BertConfig

    from bertflow.presets import architecture

    return BertConfig(vocab_size=common.vocab_size, pad_token_id=0,
                      max_position_embeddings=common.max_position_embeddings, **architecture(preset))


def execute(run: Run, blocks, common: Common) -> dict:
    """Run one measurement in this process."""
    import resource

    import accelerate  # noqa: F401  (imported before the RSS reading, so both loops' growth excludes imports)
    import torch
    import transformers.trainer  # noqa: F401

    from bertflow import pretrain  # noqa: F401

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    held_out = None
    if common.eval_blocks:
        blocks, held_out = blocks[: -common.eval_blocks], blocks[-common.eval_blocks :]
    config = model_config(run.preset, common)
    if common.tokenizer_dir:
        from bertflow.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(common.tokenizer_dir)
    else:
        tokenizer = synthetic_tokenizer(common.vocab_size)
    shared = dict(steps=common.steps, batch_size=common.batch_size, learning_rate=common.learning_rate,
                  seed=common.seed, device=common.device, precision=common.precision,
                  mlm_probability=common.mlm_probability, warmup_steps=common.warmup_steps, eval_blocks=held_out)
    threads = torch.get_num_threads()
    if run.kind == "baseline":
        result = trainer_steps(blocks, config, tokenizer=tokenizer, **shared)
    else:
        options = {**ours_defaults(common.device, common.threads), **run.options}
        torch.set_num_threads(options["threads"])
        try:
            result = benchmark_steps(blocks, config, mask_token_id=tokenizer.mask_token_id,
                                     special_ids=tuple(tokenizer.all_special_ids),
                                     **shared, **{k: v for k, v in options.items() if k != "threads"})
        finally:
            torch.set_num_threads(threads)  # the matmul peak below is measured with the invocation's threads
        result["settings"] = options
    result["rss_before_bytes"] = rss_before
    if common.device == "cuda":
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    else:  # the CPU peak is re-measured next to every run; the best reading serves as the MFU peak
        result["cpu_matmul_flops"] = measured_matmul_flops("cpu", torch.float32)
    return result


def execute_isolated(run: Run, blocks_path: str, common: Common, workdir: str) -> dict:
    """`execute` in a fresh Python process: its own peak RSS / CUDA memory, no compile caches or global state."""
    spec = {"run": asdict(run), "common": asdict(common), "blocks": blocks_path}
    return run_worker("benchmarks.train_bench", spec, workdir, f"{run.preset}-{run.seq_len}-{run.kind}")


def worker(spec_path: str, out_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    blocks = torch.load(spec["blocks"])
    result = execute(Run(**spec["run"]), blocks, Common(**spec["common"]))
    Path(out_path).write_text(json.dumps(result))


# --------------------------------------------------------------------------- results


def summarise(run: Run, result: dict, common: Common, peak_flops: float) -> dict:
    """One table row: speed, memory, MFU and loss of a run."""
    config = model_config(run.preset, common)
    head_share = 1.0 if run.kind == "baseline" or not result.get("settings", {}).get("masked_only_head", True) \
        else masked_fraction(run.seq_len, common.mlm_probability)
    fpt = flops_per_token(config, run.seq_len, head_share)
    losses = result["losses"]
    return {
        "preset": run.preset, "seq_len": run.seq_len, "run": run.name, "kind": run.kind,
        "tokens_per_s": result["tokens_per_s"],
        "peak_memory_bytes": result["peak_memory_bytes"],
        "rss_before_bytes": result.get("rss_before_bytes"),
        "peak_reserved_bytes": result.get("peak_reserved_bytes"),
        "flops_per_token": fpt, "head_share": head_share,
        "model_tflops_per_s": result["tokens_per_s"] * fpt / 1e12,
        "mfu": result["tokens_per_s"] * fpt / peak_flops,
        "final_loss": result["final_loss"], "mean_loss": sum(losses) / len(losses), "first_loss": losses[0],
        "eval_loss": result.get("eval_loss"), "loss_curve": loss_curve(losses),
        "wall_s": result["wall_s"], "device": result["device"], "precision": result["precision"],
        "settings": json.dumps(result.get("settings") or {k: result[k] for k in ("attention", "optimizer")
                                                           if k in result}),
    }


MEDIAN_KEYS = ("tokens_per_s", "peak_memory_bytes", "rss_before_bytes", "peak_reserved_bytes", "model_tflops_per_s",
               "mfu", "final_loss", "mean_loss", "first_loss", "eval_loss", "wall_s")


def loss_curve(losses: list[float], points: int = 10) -> list[float]:
    """The training-loss curve: the mean of each of `points` consecutive, near-equal windows of steps."""
    points = min(points, len(losses))
    edges = [i * len(losses) // points for i in range(points + 1)]
    return [round(statistics.fmean(losses[a:b]), 4) for a, b in zip(edges, edges[1:])]


def median_rows(measured: list[dict]) -> list[dict]:
    """One row per (preset, seq_len, run): the median of every figure over the rounds, with each
    round's tokens/s beside it (never the best round: on a shared machine that favours luck)."""
    groups: dict[tuple, list[dict]] = {}
    for row in measured:
        groups.setdefault((row["preset"], row["seq_len"], row["run"]), []).append(row)
    rows = []
    for group in groups.values():
        row = dict(group[0])
        for key in MEDIAN_KEYS:
            if all(r.get(key) is not None for r in group):
                row[key] = statistics.median(r[key] for r in group)
        row["tokens_per_s_repeats"] = [r["tokens_per_s"] for r in group]
        rows.append(row)
    return rows


def round_ratios(measured: list[dict], preset: str, seq_len: int, run: str, reference: str) -> dict | None:
    """Median and min-max over the rounds of run / reference tokens/s, each pair from the same round."""
    by_round: dict[int, dict[str, float]] = {}
    for r in measured:
        if (r["preset"], r["seq_len"]) == (preset, seq_len) and r["run"] in (run, reference):
            by_round.setdefault(r.get("round", 0), {})[r["run"]] = r["tokens_per_s"]
    ratios = [pair[run] / pair[reference] for pair in by_round.values() if run in pair and reference in pair]
    return ratio_summary(ratios) if ratios else None


def compare(rows: list[dict], tolerance: float, measured: list[dict] | None = None) -> list[dict]:
    """Per (preset, seq_len): ours / baseline speed (median and min-max of the per-round pair ratios),
    memory, and whether the final losses agree."""
    out = []
    for key in dict.fromkeys((r["preset"], r["seq_len"]) for r in rows):
        group = {r["run"]: r for r in rows if (r["preset"], r["seq_len"]) == key}
        if BASELINE not in group or OURS not in group:
            continue
        base, ours = group[BASELINE], group[OURS]
        gap = (ours["final_loss"] - base["final_loss"]) / base["final_loss"]
        pairs = round_ratios(measured or rows, *key, OURS, BASELINE)
        out.append({"preset": key[0], "seq_len": key[1], "speedup": pairs["median"],
                    "speedup_min": pairs["min"], "speedup_max": pairs["max"], "speedup_pairs": pairs["pairs"],
                    "memory_ratio": memory_used(ours) / max(memory_used(base), 1),
                    "relative_final_loss_gap": gap, "loss_within_tolerance": abs(gap) <= tolerance,
                    "cuda": ours["device"].startswith("cuda")})
    return out


def memory_used(row: dict) -> int:
    """What the comparison uses. CUDA: max reserved (max allocated misses the private pools of CUDA
    graphs, which ours uses when compiled); CPU: peak RSS growth over the RSS before the model."""
    if row["device"].startswith("cuda"):
        return row.get("peak_reserved_bytes") or row["peak_memory_bytes"]
    return row["peak_memory_bytes"] - (row["rss_before_bytes"] or 0)


def memory_text(row: dict) -> str:
    if row["device"].startswith("cuda"):  # reserved also sees CUDA-graph pools, which allocated misses
        return f"{row['peak_memory_bytes'] / 2**30:.2f} GiB (reserved {(row['peak_reserved_bytes'] or 0) / 2**30:.2f})"
    return f"{row['peak_memory_bytes'] / 2**20:,.0f} MiB (+{memory_used(row) / 2**20:,.0f})"


def eval_text(row: dict) -> str:
    return "" if row.get("eval_loss") is None else f"{row['eval_loss']:.4f}"


def format_report(rows: list[dict], comparisons: list[dict], tolerance: float, peaks: dict,
                  measured: list[dict] | None = None) -> str:
    against = "; ".join(f"{p}: {flops / 1e12:,.2f} TFLOP/s ({source})" for p, (flops, source) in peaks.items())
    lines = [f"MFU against the peak for each run's precision, {against}. Memory: "
             + ("CUDA max allocated after the warm-up (max reserved, which includes CUDA-graph pools, "
                "in brackets)." if rows and rows[0]["device"].startswith("cuda")
                else "process peak RSS (growth over the RSS before building the model).")]
    repeats = max((len(r.get("tokens_per_s_repeats", [])) for r in rows), default=1)
    if repeats > 1:
        lines.append(f"{repeats} rounds, each run in every round (order reversed every other round); medians over "
                     "the rounds, 'x ours' = median (min-max) of the per-round ratios to ours.")
    lines.append("")
    header = f"{'preset':7s} {'seq':>4s}  {'run':34s} {'tokens/s':>12s} {'x ours (min-max)':>19s} {'GFLOP/tok':>9s} " \
             f"{'MFU':>7s} {'final loss':>10s} {'eval loss':>9s}  peak memory"
    lines += [header]
    for key in dict.fromkeys((r["preset"], r["seq_len"]) for r in rows):
        group = [r for r in rows if (r["preset"], r["seq_len"]) == key]
        ours = next((r for r in group if r["run"] == OURS), None)
        lines.append("-" * len(header))
        for r in group:
            ratio = round_ratios(measured or rows, *key, r["run"], OURS) if ours else None
            rel = f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else ""
            lines.append(f"{r['preset']:7s} {r['seq_len']:4d}  {r['run']:34s} {r['tokens_per_s']:12,.0f} {rel:>19s} "
                         f"{r['flops_per_token'] / 1e9:9.4f} {r['mfu']:7.2%} {r['final_loss']:10.4f} "
                         f"{eval_text(r):>9s}  {memory_text(r)}")
    lines.append("")
    for c in comparisons:
        verdict = "within" if c["loss_within_tolerance"] else "OUTSIDE"
        lines.append(f"{c['preset']} seq {c['seq_len']}: ours / baseline = {c['speedup']:.2f}x tokens/s "
                     f"(pairs {c['speedup_min']:.2f}-{c['speedup_max']:.2f}, n={len(c['speedup_pairs'])}), "
                     f"{c['memory_ratio']:.2f}x memory{' (max reserved)' if c['cuda'] else ' (RSS growth)'}; final loss gap {c['relative_final_loss_gap']:+.2%} "
                     f"({verdict} the {tolerance:.0%} tolerance)")
    return "\n".join(lines)


def write_results(out_dir: str, payload: dict, rows: list[dict]) -> None:
    from bertflow.io import write_json

    out = Path(out_dir)
    write_json(out / "train_bench.json", payload)
    with open(out / "train_bench.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["run"])
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tiny"], help="bertflow.presets names")
    p.add_argument("--seq-lens", nargs="+", type=int, default=[128],
                   help="block lengths (random/generated/text data; --data blocks uses the blocks' own)")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (one process)")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds: every run once per round, order reversed every other round; medians and "
                        "per-round ratios (min-max) are reported")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first (allocator, compile)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="both loops; auto = bf16 on a CUDA GPU that supports it, else fp32")
    p.add_argument("--data", choices=["random", "generated", "text", "blocks"], default="random",
                   help="random ids; the generated demo corpus (own tokenizer); --text with --tokenizer; "
                        "--blocks from the tokenize_corpus stage (needs `datasets`)")
    p.add_argument("--vocab-size", type=int, default=30522, help="random: ids drawn below it; generated: tokenizer size")
    p.add_argument("--sentences", type=int, default=20000, help="generated: corpus size")
    p.add_argument("--text", help="text file, one document per line (--data text)")
    p.add_argument("--tokenizer", help="tokenizer folder (--data text; --data blocks: default BLOCKS/../tokenizer)")
    p.add_argument("--blocks", help="blocks folder of the tokenize_corpus stage (--data blocks)")
    p.add_argument("--no-baseline", action="store_true", help="time ours only")
    p.add_argument("--no-levers", action="store_true", help="skip the lever-by-lever runs")
    p.add_argument("--levers", nargs="+", metavar="WORD",
                   help="only the levers whose label contains one of these words (e.g. dropout thread)")
    p.add_argument("--eval-blocks", type=int, default=0,
                   help="hold out this many blocks after the training ones; every run reports its masked-LM "
                        "loss on them after training (fixed masks, dropout off)")
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: data sheet / measured)")
    p.add_argument("--tolerance", type=float, default=0.03, help="allowed relative gap of the final losses")
    p.add_argument("--in-process", action="store_true",
                   help="no fresh process per run (faster; CPU peak RSS is then cumulative)")
    p.add_argument("--out", default="results/train_bench", help="folder for train_bench.json and .csv")
    p.add_argument("--worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "vocab_size", "sentences", "repeats"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be at least 1")
    if args.eval_blocks < 0:
        raise ConfigError("--eval-blocks: must be 0 or more")
    if args.data == "text" and not (args.text and args.tokenizer):
        raise ConfigError("--data text needs --text FILE and --tokenizer DIR")
    if args.data == "blocks" and not args.blocks:
        raise ConfigError("--data blocks needs --blocks DIR (the tokenize_corpus stage's output)")
    return args


def load_data(args, seq_len: int, n_blocks: int, workdir: str):
    """(blocks LongTensor [n, seq_len], tokenizer dir or None, vocab size)."""
    if args.data == "random":
        return random_blocks(n_blocks, seq_len, args.vocab_size, args.seed), None, args.vocab_size
    if args.data == "blocks":
        from bertflow.blocks import load_blocks

        meta, splits = load_blocks(args.blocks)
        tokenizer_dir = args.tokenizer or str(Path(args.blocks).parent / "tokenizer")  # the workflow's layout
        from bertflow.block_loader import head_rows

        return head_rows(splits["train"], n_blocks), (tokenizer_dir if Path(tokenizer_dir).is_dir() else None), meta["vocab_size"]
    if args.data == "generated":
        if not Path(workdir, "tokenizer").is_dir():
            generated_text(workdir, args.sentences, args.vocab_size, args.seed)
        text, tokenizer_dir = str(Path(workdir, "corpus.txt")), str(Path(workdir, "tokenizer"))
    else:
        text, tokenizer_dir = args.text, args.tokenizer
    from bertflow.tokenizer import load_tokenizer

    return text_blocks(text, tokenizer_dir, seq_len)[:n_blocks], tokenizer_dir, len(load_tokenizer(tokenizer_dir))


def main(argv: list[str] | None = None) -> int:
    try:
        return bench(parse_args(argv))
    except PipelineError as err:  # bad input: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


def bench(args) -> int:
    if args.worker:
        worker(*args.worker)
        return 0
    import torch

    from bertflow.provenance import environment_info
    from bertflow.runtime import resolve_device, resolve_precision

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    peak = device_peak_flops(device, precision, args.peak_tflops)
    peaks = {precision: peak}
    if args.data == "blocks":  # the blocks fix the length
        from bertflow.block_files import read_meta

        args.seq_lens = [read_meta(args.blocks)["seq_len"]]
    runs = plan(args.presets, args.seq_lens, device, baseline=not args.no_baseline, with_levers=not args.no_levers,
                only=args.levers, threads=torch.get_num_threads())
    print(f"{len(runs)} runs on {device} ({precision}), {args.steps} steps of {args.batch_size} blocks each; "
          f"peak {peak[0] / 1e12:,.2f} TFLOP/s ({peak[1]})", flush=True)
    rows: list[dict] = []
    measured: list[dict] = []  # every repeat; `rows` keeps the fastest of each run
    failures: list[dict] = []
    payload = {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "device": device,
               "precision": precision, "peaks": peaks, "environment": environment_info()}
    with tempfile.TemporaryDirectory() as workdir:
        data: dict[int, tuple] = {}
        # Rounds: every run once per round, the order reversed every other round (A B, B A, ...), so
        # a slow spell of the shared machine hits both members of a pair; ratios are per round.
        schedule = [(r, run) for r in range(args.repeats) for run in (runs if r % 2 == 0 else runs[::-1])]
        for round_, run in schedule:
            if run.seq_len not in data:
                data[run.seq_len] = prepare_data(args, run.seq_len, workdir)
            blocks, path, tokenizer_dir, vocab = data[run.seq_len]
            common = Common(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                            device=device, precision=precision, mlm_probability=args.mlm_probability,
                            warmup_steps=args.warmup_steps, vocab_size=vocab,
                            max_position_embeddings=max(512, blocks.shape[1]), tokenizer_dir=tokenizer_dir,
                            eval_blocks=args.eval_blocks, threads=torch.get_num_threads())
            try:
                result = execute(run, blocks, common) if args.in_process else execute_isolated(run, path, common, workdir)
            except RuntimeError as err:  # one failed run (e.g. a compile error) must not lose the others
                failures.append({"preset": run.preset, "seq_len": run.seq_len, "run": run.name, "error": str(err)})
                print(f"  {run.preset} seq {run.seq_len} {run.name}: FAILED\n{err}", flush=True)
                continue
            if result["precision"] not in peaks:  # e.g. the fp32 lever row of a bf16 run, against the TF32 peak
                peaks[result["precision"]] = device_peak_flops(device, result["precision"], args.peak_tflops)
            if result.get("cpu_matmul_flops", 0) > peaks[precision][0] and not args.peak_tflops:
                peaks[precision] = (result["cpu_matmul_flops"], f"best fp32 matmul measured during the run, "
                                                                 f"{torch.get_num_threads()} thread(s)")
            measured.append({**summarise(run, result, common, peaks[result["precision"]][0]), "round": round_})
            for row in measured:  # against the current peak (it can only have grown)
                row["mfu"] = row["model_tflops_per_s"] * 1e12 / peaks[row["precision"]][0]
            rows, r = median_rows(measured), measured[-1]
            print(f"  {run.preset} seq {run.seq_len} {run.name}: {r['tokens_per_s']:,.0f} tokens/s, "
                  f"MFU {r['mfu']:.2%}, final loss {r['final_loss']:.4f}"
                  + (f", eval loss {r['eval_loss']:.4f}" if r.get("eval_loss") is not None else "")
                  + f", {memory_text(r)}", flush=True)
            comparisons = compare(rows, args.tolerance, measured)
            write_results(args.out, {**payload, "rows": rows, "comparisons": comparisons, "failures": failures,
                                     "all_repeats": measured}, rows)
    print()
    print(format_report(rows, compare(rows, args.tolerance, measured), args.tolerance, peaks, measured))
    print(f"\nwritten: {Path(args.out, 'train_bench.json')}, {Path(args.out, 'train_bench.csv')}")
    if failures:
        print(f"{len(failures)} run(s) failed: " + ", ".join(f"{f['preset']}/{f['run']}" for f in failures))
    return 1 if failures else 0


def prepare_data(args, seq_len: int, workdir: str) -> tuple:
    """(blocks, their .pt file for the worker processes, tokenizer dir or None, vocabulary size).
    With --eval-blocks the last that many blocks are the held-out ones (never trained on)."""
    import torch

    wanted = (args.steps + args.warmup_steps) * args.batch_size + args.eval_blocks
    blocks, tokenizer_dir, vocab = load_data(args, seq_len, wanted, workdir)
    if len(blocks) - args.eval_blocks < args.batch_size:
        raise DataError(f"{len(blocks)} blocks of {blocks.shape[1]} tokens leave fewer than one batch of "
                        f"{args.batch_size} after the {args.eval_blocks} held out; use more text or a smaller "
                        "--batch-size / --eval-blocks")
    path = str(Path(workdir, f"blocks_{seq_len}.pt"))
    torch.save(blocks, path)
    return blocks, path, tokenizer_dir, vocab

if __name__ == "__main__":
    sys.exit(main())
