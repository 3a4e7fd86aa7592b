"""Fine-tuning stages: classification and regression on single texts or pairs (the GLUE tasks, and
tasks on the config's own files) and SQuAD v1.1 / v2.0 (extractive QA).

One loop for all (AdamW, linear warmup/decay, bf16 autocast on GPU, Accelerate for device and
DDP), evaluated after every epoch on the validation split, as run_glue.py / run_qa.py do with
`--do_eval --eval_strategy epoch`. The model source is any local model folder: our pretrained
model, a baseline folder, or a Hub model downloaded by the `download_model` rule (bertflow.models).

Interruption: with a checkpoint folder (the workflow gives one), a checkpoint (model, optimizer,
scheduler, RNG, the epochs' rows and the position in the epoch) is written after every epoch but the
last, and on SIGTERM/SIGINT at the next step boundary. Rerunning the stage resumes from it, reading
on in the same seeded batch order, and ends with the same weights and metrics as a run never cut.

Run under a launcher as `python -m bertflow.finetune SPEC.json`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .checkpoints import StopRequested, stop_on_signals
from .checks import require_supported_model, tokenizer_problems, unpadding_refusal
from .distributed import spec_main, world_size
from .errors import ConfigError, DataError
from .hashing import sha256_file
from .inputs import encode_texts, uses_token_types
from .io import write_json
from .provenance import environment_info
from .runtime import autocast, make_accelerator, resolve_device, resolve_precision
from .settings import from_config
from .tasks import GLUE_TASKS, TextTask, custom_task, text_task
from .training import (Progress, StepPlan, Stretch, TrainingLoop, run_loop, save_model, weight_decay_groups,
                       write_rows_csv)
from .weight_files import safetensors_shapes

log = logging.getLogger(__name__)


@dataclass
class FinetuneSettings:
    """One task's section of `finetune` without its data-source keys (config/config.schema.yaml gives
    the meanings and each task's defaults; a key another task has, such as SQuAD's doc_stride for
    SST-2, is None)."""

    max_length: int
    epochs: int
    batch_size: int
    eval_batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    doc_stride: int
    n_best: int
    max_answer_length: int
    null_score_diff_threshold: float
    max_train_samples: int | None
    max_eval_samples: int | None
    reduce_vocab: bool
    precision: str
    dynamic_padding: bool
    group_by_length: bool
    unpad: bool | str

    @classmethod
    def from_config(cls, section: dict, where: str) -> "FinetuneSettings":
        """`where`: the task's section, "finetune.sst2" or "finetune.squad"."""
        return from_config(cls, section, where)


# ----------------------------------------------------------------------------- models


TASK_KINDS = ("classification", "regression", "qa")


def load_task_model(task_kind: str, model_dir: str, max_length: int | None = None, labels=None):
    """Task model (a new, seeded head on the pretrained body), its tokenizer, and transformers'
    loading report (which weights were newly initialised or left unused). `task_kind`:
    classification (`labels`: the class names, in id order), regression (one output, MSE loss) or
    qa; `max_length`: the task's, checked against the model's positions before any weight is read."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    if task_kind not in TASK_KINDS:
        raise ConfigError(f"unknown task kind {task_kind!r}; expected one of {', '.join(TASK_KINDS)}")
    # Before any weight is read: a GPT-2 folder, or a Hub baseline with fewer positions than max_length.
    require_supported_model(model_dir, max_lengths={task_kind: max_length} if max_length else None,
                            tasks=[task_kind])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if task_kind == "classification":
        names = [str(label) for label in labels]
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=len(names), id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)}, output_loading_info=True)
    elif task_kind == "regression":
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=1, problem_type="regression", output_loading_info=True)
    else:
        model, info = AutoModelForQuestionAnswering.from_pretrained(model_dir, output_loading_info=True)
    special = {role: getattr(tokenizer, role) for role in ("pad_token", "cls_token", "sep_token")}
    problems = tokenizer_problems(model_dir, "its tokenizer", len(tokenizer), special, model.config.vocab_size, [task_kind])
    if problems:
        raise DataError("; ".join(problems))
    return model, tokenizer, info


def unpad_decision(setting, model, device_type: str, where: str) -> tuple[bool, str]:
    """Whether the encoder runs unpadded, and why. `auto`: where the unpadded encoder serves the
    model's family and not on CUDA, where its equality checks have not run yet; `true` on a model it
    cannot serve is a ConfigError naming the family."""
    refusal = unpadding_refusal(model.config.to_dict())
    if setting is False:
        return False, "unpad: false"
    if setting is True:
        if refusal:
            raise ConfigError(f"{where}.unpad is true but {refusal}; set unpad: auto or false")
        return True, "unpad: true"
    if refusal:
        return False, f"unpad: auto and {refusal}"
    if device_type == "cuda":
        return False, ("unpad: auto on CUDA, where the unpadded encoder's equality checks "
                       "(tests/test_unpadding.py) have not run yet; set unpad: true to use it")
    return True, f"unpad: auto and the unpadded encoder serves model_type {model.config.model_type!r}"


def checkpoint_sizes(model_dir: str) -> dict[str, int]:
    """Tensor name -> element count of the saved weights (safetensors headers, else PyTorch .bin)."""
    shapes = safetensors_shapes(model_dir)
    if shapes is not None:
        return {name: math.prod(shape) for name, shape in shapes.items()}
    sizes: dict[str, int] = {}
    for path in sorted(Path(model_dir).glob("pytorch_model*.bin")):
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        sizes.update({name: tensor.numel() for name, tensor in state.items()})
    return sizes


def parameter_accounting(model_dir: str, model, loading_info: dict) -> dict:
    """Parameters of the fine-tuned model next to the pretrained checkpoint, and the task head:
    the weights transformers had to initialise (its loading report, which also resolves
    checkpoints saved without the `bert.` prefix or in the old .bin format)."""
    tuned = dict(model.named_parameters())
    added = sorted(name for name in loading_info["missing_keys"] if name in tuned)
    source = checkpoint_sizes(model_dir)
    dropped = sorted(loading_info["unexpected_keys"])
    finetuned = sum(p.numel() for p in tuned.values())
    head = sum(tuned[name].numel() for name in added)
    dropped_count = sum(source.get(name, 0) for name in dropped)
    return {
        "pretrained_parameters": sum(source.values()) if source else finetuned - head + dropped_count,
        "finetuned_parameters": finetuned,
        "head_parameters_added": head,
        "head_parameter_names": added,
        "pretrained_parameters_dropped": dropped_count,
        "dropped_parameter_names": dropped,
    }


# ----------------------------------------------------------------------------- tasks

class SentenceTask:
    """A classification or regression task on single texts or pairs (a GLUE task, or one of the
    config's own, bertflow.tasks.TextTask), read from its prepared TSV files."""

    sequence_outputs: tuple[str, ...] = ()
    pooled_only = True  # the head reads the [CLS] row only

    def __init__(self, tokenizer, settings: FinetuneSettings, train_file: str, validation_file: str,
                 definition: TextTask | None = None, token_types: bool = True):
        from .task_data import read_prepared_tsv, task_labels

        self.definition = definition or GLUE_TASKS["sst2"]
        self.name = self.definition.name
        train = read_prepared_tsv(train_file)
        self.labels = task_labels(self.definition, train)  # None for regression
        self.train = train[: settings.max_train_samples]
        validation = read_prepared_tsv(validation_file)
        self.validation = [e for name in self.definition.validation_sets  # MNLI: the first N of each set
                           for e in [e for e in validation if e.validation_set == name][: settings.max_eval_samples]]
        self.tokenizer, self.settings = tokenizer, settings
        # Single texts are all token type 0, the model's default: only pairs carry token_type_ids.
        self.token_types = token_types and self.definition.pair
        self.files = (train_file, validation_file)

    def contract(self) -> dict:
        return self.definition.contract()

    def _targets(self, rows) -> torch.Tensor:
        if self.labels is None:
            return torch.tensor([float(e.label) for e in rows])
        ids = {label: i for i, label in enumerate(self.labels)}
        return torch.tensor([ids[e.label] for e in rows])

    def _encode(self, rows):
        # Padded to the longest row of the split only; batches are cut to their own longest.
        second = [e.texts[1] for e in rows] if self.definition.pair else None
        return encode_texts(self.tokenizer, [e.texts[0] for e in rows], second, self.settings.max_length,
                            token_types=self.token_types)

    def build_features(self) -> dict[str, dict]:
        return {"train": {**self._encode(self.train), "labels": self._targets(self.train)},
                "eval": self._encode(self.validation)}

    @staticmethod
    def training_loss(model, batch: dict) -> torch.Tensor:
        return model(**batch).loss

    def _metric(self):
        from .metrics import load

        # SST-2 keeps its module: accuracy with the positive class's precision, recall and F1.
        return load("sst2") if self.name == "sst2" else load("glue", self.definition.metric_config)

    def score(self, outputs: dict, features: dict) -> tuple[dict, object]:
        logits = outputs["logits"]
        predicted = (logits[:, 0] if self.labels is None else logits.argmax(-1)).numpy()
        gold = self._targets(self.validation).numpy()
        sets = self.definition.validation_sets
        metrics = {}
        for name in sets:  # MNLI: matched and mismatched, each scored on its own
            rows = np.array([e.validation_set == name for e in self.validation])
            scores = self._metric().compute(predictions=predicted[rows], references=gold[rows])
            metrics.update({f"{k}_{name}" if name else k: v for k, v in scores.items()})
        columns = self.definition.columns
        predictions = [{**dict(zip(columns, e.texts)), "label": self._value(g), "prediction": self._value(p)}
                       for e, g, p in zip(self.validation, gold, predicted)]
        return metrics, predictions

    def _value(self, target):
        return float(target) if self.labels is None else self.labels[int(target)]


class Squad:
    name = "squad"
    sequence_outputs = ("start_logits", "end_logits")  # one score per token: padded back to full width
    pooled_only = False

    def __init__(self, tokenizer, settings: FinetuneSettings, train_file: str, validation_file: str,
                 token_types: bool = True):
        from .task_data import read_squad_json, squad_examples, squad_is_v2

        # The prepared files' `version` says v1.1 or v2.0 (finetune.squad.version_2_with_negative).
        validation = read_squad_json(validation_file, version_2=None)
        self.version_2 = squad_is_v2(validation)
        self.train = squad_examples(read_squad_json(train_file, self.version_2))[: settings.max_train_samples]
        self.validation = squad_examples(validation)[: settings.max_eval_samples]
        self.tokenizer, self.settings, self.token_types = tokenizer, settings, token_types
        self.files = (train_file, validation_file)

    def build_features(self) -> dict[str, dict]:
        from .qa import eval_features, train_features

        s = self.settings
        train = train_features(self.tokenizer, self.train, s.max_length, s.doc_stride, self.token_types)
        inputs, example_index, offsets = eval_features(self.tokenizer, self.validation, s.max_length, s.doc_stride,
                                                       self.token_types)
        return {"train": {k: torch.tensor(v) for k, v in train.items()},
                "eval": {k: torch.tensor(v) for k, v in inputs.items()},
                "decode": {"example_index": torch.tensor(example_index), "offsets": torch.from_numpy(offsets)}}

    @staticmethod
    def training_loss(model, batch: dict) -> torch.Tensor:
        """transformers' span loss over each window's real tokens: padding is left out of the
        softmax (the head alone scores every column of the batch), so the loss does not depend on
        how far a batch is padded, nor on whether the encoder computed the padding (`unpad`)."""
        from transformers.loss.loss_utils import ForQuestionAnsweringLoss

        positions = ("start_positions", "end_positions")
        out = model(**{k: v for k, v in batch.items() if k not in positions})
        padding = batch["attention_mask"] == 0
        start, end = (logits.masked_fill(padding, torch.finfo(logits.dtype).min)
                      for logits in (out.start_logits, out.end_logits))
        return ForQuestionAnsweringLoss(start, end, *(batch[k] for k in positions))

    def score(self, outputs: dict, features: dict) -> tuple[dict, object]:
        from .qa import decode_answers
        from .squad_metrics import squad_scores

        if self.version_2:
            metrics, predictions = self.score_v2(outputs, features)
        else:
            predictions = decode_answers(self.validation, *self._decode_inputs(outputs, features))
            metrics = squad_scores(self._gold(), predictions)
        return metrics, predictions

    def score_v2(self, outputs: dict, features: dict) -> tuple[dict, dict]:
        """The official v2.0 scores, and per question the answer ("" for none), the best span and
        the null score diff (null when no span was valid)."""
        from .qa import cls_positions, decode_answers_v2
        from .squad_metrics import squad_v2_scores

        threshold = self.settings.null_score_diff_threshold
        cls_index = cls_positions(features["eval"]["input_ids"].numpy(), self.tokenizer.cls_token_id)
        decoded = decode_answers_v2(self.validation, *self._decode_inputs(outputs, features), cls_index, threshold)
        metrics = squad_v2_scores(self._gold(), decoded.spans, decoded.null_score_diffs, threshold)
        return metrics, decoded.rows()

    def _decode_inputs(self, outputs: dict, features: dict) -> tuple:
        decode, s = features["decode"], self.settings
        return (decode["example_index"].tolist(), decode["offsets"].numpy(), outputs["start_logits"].numpy(),
                outputs["end_logits"].numpy(), s.n_best, s.max_answer_length)

    def _gold(self) -> dict[str, list[str]]:
        return {e["id"]: e["answers"]["text"] for e in self.validation}

    def contract(self) -> dict:
        label = "SQuAD v2.0" if self.version_2 else "SQuAD v1.1"
        return {"task_metrics": ["exact_match", "f1"], "task_label": label, "glue": False}


# The built-in tasks by name, each called as TASKS[name](tokenizer, settings, train_file, validation_file).
TASKS = {**{name: partial(SentenceTask, definition=task) for name, task in GLUE_TASKS.items()}, "squad": Squad}


def task_data_for(task: str, definition: dict | None, tokenizer, settings, train_file: str, validation_file: str,
                  token_types: bool):
    """The task's data: SQuAD, a GLUE task, or the custom task `definition` (its config section)."""
    if task == "squad":
        return Squad(tokenizer, settings, train_file, validation_file, token_types)
    spec = custom_task(task, definition) if definition else text_task(task)
    return SentenceTask(tokenizer, settings, train_file, validation_file, spec, token_types)


def task_kind_and_labels(task: str, definition: dict | None, train_file: str) -> tuple[str, tuple | None]:
    """What load_task_model needs before the tokenizer exists: the kind and the class names."""
    if task == "squad":
        return "qa", None
    from .task_data import read_prepared_tsv, task_labels

    spec = custom_task(task, definition) if definition else text_task(task)
    labels = task_labels(spec, read_prepared_tsv(train_file))
    return spec.kind, (list(spec.id2label(labels).values()) if labels is not None else None)

# What a cached feature file depends on besides the tokenizer and the data files; bump
# FEATURES_FORMAT when the feature code changes what it produces.
FEATURES_FORMAT = 3
FEATURE_SETTINGS = ("max_length", "doc_stride", "max_train_samples", "max_eval_samples")


def tokenizer_digest(tokenizer) -> str:
    """sha256 of the tokenizer's full JSON (normalisation, vocabulary, special tokens) without the
    truncation and padding state that encoding a batch leaves on it: the same before and after."""
    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def features_key(task) -> str:
    """Fingerprint of everything the features depend on: the tokenizer, the data files' bytes, the
    settings used."""
    spec = {
        "format": FEATURES_FORMAT, "task": task.name, "labels": getattr(task, "labels", None),
        "token_types": getattr(task, "token_types", None),
        "tokenizer": tokenizer_digest(task.tokenizer),
        "files": [sha256_file(path) for path in task.files],
        "settings": {k: getattr(task.settings, k) for k in FEATURE_SETTINGS},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def load_features(task, cache_dir: str | None) -> dict:
    """The task's tensors, built once per tokenizer + data + settings and kept in `cache_dir`
    (every seed and every rerun with other training settings reads the same file)."""
    if cache_dir is None:
        return task.build_features()
    path = Path(cache_dir, f"{task.name}-{features_key(task)}.pt")
    if path.is_file():
        try:
            features = torch.load(path, weights_only=True)
            log.info("%s: features from %s", task.name, path)
            return features
        except Exception as err:  # a damaged cache file is rebuilt, never trusted
            log.warning("%s: cannot read %s (%r); rebuilding the features", task.name, path, err)
    started = time.perf_counter()
    features = task.build_features()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # seeds may run side by side
    torch.save(features, partial)
    os.replace(partial, path)
    log.info("%s: features built in %.1f s, cached in %s", task.name, time.perf_counter() - started, path)
    return features


def model_digest(model_dir: str) -> str:
    """sha256 over the model folder's config and weight files (what a checkpoint was trained from)."""
    files = sorted(path for path in Path(model_dir).iterdir()
                   if path.name == "config.json" or path.suffix in (".safetensors", ".bin"))
    return hashlib.sha256(json.dumps({path.name: sha256_file(path) for path in files}).encode()).hexdigest()


# Part of the fingerprint: a checkpoint made by an earlier optimizer rule (decay on every parameter)
# is set aside rather than resumed under this one.
OPTIMIZER = "adamw: no decay on biases and norm weights"


def run_fingerprint(task, settings: FinetuneSettings, model_dir: str, seed: int, world: int) -> str:
    """A checkpoint resumes only the run it came from: the same pretrained weights, features
    (tokenizer, data files, their settings), settings, seed and number of processes."""
    spec = {"model": model_digest(model_dir), "features": features_key(task), "settings": asdict(settings),
            "seed": seed, "world": world, "optimizer": OPTIMIZER}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- batches


def padded_width(longest: int, full_width: int, multiple: int) -> int:
    """Columns a batch keeps: its longest row, rounded up to `multiple` (tensor-core tiles on GPU)."""
    return min(full_width, -(-longest // multiple) * multiple)


def length_grouped_order(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                         megabatch_batches: int = 50) -> torch.Tensor:
    """A shuffled order whose batches hold rows of similar length: a random permutation cut into
    mega-batches of 50 batches, each sorted by length and cut into batches (as transformers'
    LengthGroupedSampler), and then the batches shuffled, so consecutive steps do not run from long
    to short rows. Every row appears once; a trailing partial batch stays last (the loop drops it)."""
    order = torch.randperm(len(lengths), generator=generator)
    chunks = order.split(megabatch_batches * batch_size)
    grouped = torch.cat([chunk[lengths[chunk].argsort(descending=True, stable=True)] for chunk in chunks])
    full = len(grouped) // batch_size * batch_size
    batches = grouped[:full].view(-1, batch_size)
    shuffled = batches[torch.randperm(len(batches), generator=generator)].flatten()
    return torch.cat([shuffled, grouped[full:]])


# ----------------------------------------------------------------------------- the loop


@dataclass
class FinetuneProgress(Progress):
    """The shared progress record (`seen` counts examples) and the wall time of earlier attempts."""

    earlier_wall_s: float = 0.0  # wall time of the interrupted attempts before this one


class FineTuner(TrainingLoop):
    RATE = "examples_per_s"
    TAGS = "train/"
    LOSS_REDUCTION = "mean"  # each step's loss is the mean over processes
    STOPS_AT_EPOCH_END = True  # after the epoch's evaluation, not at its last step
    CHECKPOINTS_THE_END = False  # the outputs follow the last epoch

    def __init__(self, task, model, settings: FinetuneSettings, *, features: dict, device: str, seed: int,
                 reduction=None, tracker=None, checkpoint_dir: str | None = None, fingerprint: str = "",
                 started: float | None = None):
        from transformers import get_linear_schedule_with_warmup

        from .tracking import Tracker

        self.task, self.settings, self.seed, self.reduction = task, settings, seed, reduction
        self.name = task.name
        device = resolve_device(device)
        self.precision = resolve_precision(settings.precision, device)
        self.accelerator = make_accelerator(device)
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.features = features
        self.train_data, self.eval_data = features["train"], features["eval"]
        self.train_lengths = self.train_data["attention_mask"].sum(1)
        self.eval_lengths = self.eval_data["attention_mask"].sum(1)
        self.pad_multiple = 8 if self.accelerator.device.type == "cuda" else 1
        n = len(self.train_lengths)
        self.steps_per_epoch = n // (settings.batch_size * self.world)
        if self.steps_per_epoch == 0:
            raise DataError(f"{task.name}: {n} training features are fewer than one batch of "
                            f"{settings.batch_size} x {self.world} processes; lower batch_size")
        self.total_steps = self.steps_per_epoch * settings.epochs
        self.step_plan = StepPlan(seen_per_step=settings.batch_size * self.world,
                                  log_every=max(1, self.steps_per_epoch // 10), max_grad_norm=1.0)
        # Fused AdamW on CPU too: one pass per tensor instead of several. On CPU the dense update of a
        # 30k-row embedding is a large share of a small model's step (BERT-Tiny with 30,522 rows,
        # 1 thread: 43 ms unfused, 5 ms fused per step; docs/finetune.md).
        optimizer = torch.optim.AdamW(weight_decay_groups(model, settings.weight_decay), lr=settings.learning_rate,
                                      fused=True)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.trained = self.model
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, round(settings.warmup_ratio * self.total_steps),
                                                         self.total_steps)
        self.tracker = tracker or Tracker(task.name, None, is_main=self.accelerator.is_main_process)
        self.progress = FinetuneProgress()
        self.stretch = Stretch(self.accelerator.device)
        self.order = torch.empty(0, dtype=torch.long)  # this epoch's order of the training rows
        self.last_eval: tuple[dict, object] = ({}, None)  # the metrics and predictions of the last evaluation
        self.checkpoint_path = Path(checkpoint_dir, "last.pt") if checkpoint_dir else None
        self.fingerprint = fingerprint
        self.attempt_started = started or time.time()

    # -- state

    def wall_s(self) -> float:
        """Wall time of the run so far, the interrupted attempts included."""
        return self.progress.earlier_wall_s + time.time() - self.attempt_started

    def saved_module(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def progress_record(self) -> dict:
        return {**asdict(self.progress), "earlier_wall_s": self.wall_s()}

    def autocast(self):
        return autocast(self.accelerator.device.type, self.precision)

    def _batch(self, data: dict, lengths: torch.Tensor, index: torch.Tensor) -> dict:
        """Rows `index`, cut to the batch's longest row (dynamic padding; the attention mask makes
        the dropped columns, all padding, irrelevant)."""
        width = data["input_ids"].shape[1]
        if self.settings.dynamic_padding:
            width = padded_width(int(lengths[index].max()), width, self.pad_multiple)
        batch = {k: (v[index, :width] if v.dim() == 2 else v[index]).to(self.accelerator.device, non_blocking=True)
                 for k, v in data.items()}
        if self.reduction is not None:
            batch["input_ids"] = self.reduction.map_ids(batch["input_ids"])
        return batch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        if self.settings.group_by_length:
            return length_grouped_order(self.train_lengths, self.settings.batch_size * self.world, generator)
        return torch.randperm(len(self.train_lengths), generator=generator)

    # -- what the loop asks of the stage

    def fit(self, stop_flag: dict | None = None) -> tuple[list[dict], dict, object]:
        """Train and evaluate the epochs not done yet (a resumed run reads on in the epoch's seeded
        order); the rows of all epochs, and the last metrics and predictions. `stop_flag`: set by a
        signal (`stop_on_signals`); the run then checkpoints at the next step boundary and raises
        StopRequested."""
        run_loop(self, stop_flag)
        return (self.progress.rows, *self.last_eval)

    def start_epoch(self) -> None:
        super().start_epoch()
        self.order = self.epoch_order(self.progress.epoch)

    def micro_batches(self, epoch: int, step: int) -> list[dict]:
        bs = self.settings.batch_size
        start = (step * self.world + self.rank) * bs
        return [self._batch(self.train_data, self.train_lengths, self.order[start : start + bs])]

    def loss_of(self, batch: dict) -> torch.Tensor:
        return self.task.training_loss(self.model, batch)

    def log_due(self, last_step: bool) -> bool:
        return self.at_log_point() or last_step  # an epoch's last steps get a line of their own

    @torch.inference_mode()
    def predict(self) -> dict[str, torch.Tensor]:
        """Model outputs on the evaluation features, in their order; batches are formed from rows
        of similar length (sorted), which changes no result and pads far less."""
        model = self.accelerator.unwrap_model(self.model).eval()
        n, bs = len(self.eval_lengths), self.settings.eval_batch_size
        width = self.eval_data["input_ids"].shape[1]
        order = self.eval_lengths.argsort(descending=True, stable=True)
        outputs: dict[str, torch.Tensor] = {}
        for start in range(0, n, bs):
            index = order[start : start + bs]
            with self.autocast():
                out = model(**self._batch(self.eval_data, self.eval_lengths, index))
            for key, value in out.items():
                value = value.float().cpu()
                if key in self.task.sequence_outputs:  # columns cut by dynamic padding score -inf
                    value = torch.nn.functional.pad(value, (0, width - value.shape[1]), value=-math.inf)
                if key not in outputs:
                    outputs[key] = torch.empty((n, *value.shape[1:]), dtype=value.dtype)
                outputs[key][index] = value
        return outputs

    def evaluate(self) -> tuple[dict, object]:
        return self.task.score(self.predict(), self.features)

    def make_row(self, kind: str, result: tuple[dict, object], eval_s: float) -> tuple[dict, dict]:
        """An epoch's row: its train loss and seconds, the evaluation's seconds and float metrics."""
        self.last_eval = result
        p = self.progress
        row = {"epoch": p.epoch + 1, "train_loss": self.epoch_train_loss(), "train_seconds": p.epoch_train_s,
               "eval_seconds": eval_s, **{k: v for k, v in result[0].items() if isinstance(v, float)}}
        scalars = {f"eval/{k}": v for k, v in row.items()
                   if isinstance(v, float) and k not in ("train_seconds", "eval_seconds")}
        return row, scalars


def finetune(*, task: str, model_dir: str, train_file: str, validation_file: str, out_dir: str,
             settings: dict, seed: int, device: str, model_name: str = "model", definition: dict | None = None,
             features_cache: str | None = None, tensorboard: bool = False, checkpoint_dir: str | None = None) -> dict:
    """Stage entry: fine-tune one model on one task with one seed; write metrics and predictions.

    `features_cache`: folder where the tokenized features are kept between seeds and reruns (None:
    built in memory). `tensorboard`: write event files to OUT_DIR/tensorboard (main process).
    `checkpoint_dir`: where the run's checkpoint is kept until its outputs are written; a rerun
    resumes from it (None: no checkpoints, and signals keep their usual effect). `definition`: the
    config section of a custom task (finetune.custom.<task>); None for GLUE tasks and SQuAD."""
    from .tracking import Tracker

    started = time.time()
    where = f"finetune.custom.{task}" if definition else f"finetune.{task}"
    settings = FinetuneSettings.from_config(settings, where)
    kind, labels = task_kind_and_labels(task, definition, train_file)
    require_supported_model(model_dir, max_lengths={task: settings.max_length})  # the error names the task
    torch.manual_seed(seed)  # the task head's initialisation
    model, tokenizer, loading_info = load_task_model(kind, model_dir, settings.max_length, labels)
    params = parameter_accounting(model_dir, model, loading_info)
    task_data = task_data_for(task, definition, tokenizer, settings, train_file, validation_file,
                              uses_token_types(model.config))
    features = load_features(task_data, features_cache)
    reduction = None
    if settings.reduce_vocab:
        from .vocab_reduction import VocabReduction

        used = torch.cat([features["train"]["input_ids"].flatten(), features["eval"]["input_ids"].flatten()]).unique()
        reduction = VocabReduction(model, used.tolist(), tokenizer.all_special_ids)
        reduction.apply()
    unpadded, why = unpad_decision(settings.unpad, model, resolve_device(device), where)
    log.info("%s: %s encoder (%s)", task, "unpadded" if unpadded else "the model's own padded", why)
    if unpadded:
        from .unpadding import unpad_encoder

        unpad_encoder(model, pooled_only=task_data.pooled_only)
    fingerprint = run_fingerprint(task_data, settings, model_dir, seed, world_size()) if checkpoint_dir else ""
    tuner = FineTuner(task_data, model, settings, features=features, device=device, seed=seed, reduction=reduction,
                      checkpoint_dir=checkpoint_dir, fingerprint=fingerprint, started=started)
    resumed = tuner.resume()
    event_dir, is_main = Path(out_dir, "tensorboard"), tuner.accelerator.is_main_process
    if is_main and not resumed:
        shutil.rmtree(event_dir, ignore_errors=True)  # a rerun's curves replace the old ones
    tuner.tracker = Tracker(f"{task}/{model_name}/seed{seed}", event_dir, enabled=tensorboard, is_main=is_main,
                            purge_step=tuner.progress.global_step if resumed else None)
    # Signals become a stop at the next step only when there is a checkpoint to stop into.
    signals = stop_on_signals() if checkpoint_dir else contextlib.nullcontext(None)
    try:
        with signals as stop_flag:
            history, metrics, predictions = tuner.fit(stop_flag)
    finally:
        tuner.tracker.close()
    if not tuner.accelerator.is_main_process:
        return metrics
    model = tuner.accelerator.unwrap_model(tuner.model)
    if unpadded:
        from .unpadding import restore_encoder

        restore_encoder(model)
    result = {
        "task": task, "model": model_name, "model_dir": model_dir, "seed": seed, **metrics,
        **task_data.contract(),
        "epochs": history,
        "finetune_wall_time_s": tuner.wall_s(), "resumed": resumed,
        "train_examples": len(task_data.train), "validation_examples": len(task_data.validation),
        "train_features": len(tuner.train_lengths), "validation_features": len(tuner.eval_lengths),
        "compute_precision": tuner.precision, "processes": tuner.world,
        "unpadded": unpadded, "unpad_reason": why,
        "parameters": params,
        "settings": asdict(settings),
        "environment": environment_info(),
    }
    if reduction is not None:
        reduction.restore()
        result["vocab_reduction"] = reduction.stats()
    out = Path(out_dir)
    save_model(model, tokenizer, out / "model")
    write_json(out / "predictions.json", predictions)
    write_rows_csv(out / "epochs.csv", history)
    write_json(out / "metrics.json", result)  # last: its presence means the run is complete
    if checkpoint_dir:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the outputs hold everything now
    return result


# `python -m bertflow.finetune SPEC.json`: the entry a distributed launcher starts per process.
main = spec_main(finetune, exit_codes={StopRequested: 143})


if __name__ == "__main__":
    sys.exit(main())
