"""Fine-tuning stages: SST-2 (sequence classification) and SQuAD v1.1 (extractive QA).

One loop for both (AdamW, linear warmup/decay, bf16 autocast on GPU, Accelerate for device and
DDP), evaluated after every epoch on the validation split, as run_glue.py / run_qa.py do with
`--do_eval --eval_strategy epoch`. The model source is any local model folder: our pretrained
model, a baseline folder, or a Hub model downloaded by the `download_model` rule.

Run under a launcher as `python -m bertflow.finetune SPEC.json`.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import require_supported_model, require_supported_model_type
from .errors import ConfigError, DataError
from .io import read_json, save_tokenizer, write_json, write_text
from .pretrain import make_accelerator, resolve_device, resolve_precision
from .provenance import environment_info

log = logging.getLogger(__name__)


@dataclass
class FinetuneSettings:
    """One task's section of `finetune` (see config/config.schema.yaml)."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    doc_stride: int = 64
    n_best: int = 20
    max_answer_length: int = 30
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    reduce_vocab: bool = False
    precision: str = "auto"

    @classmethod
    def from_config(cls, section: dict) -> "FinetuneSettings":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in section.items() if k in known})


# ----------------------------------------------------------------------------- models


def load_task_model(task: str, model_dir: str, max_length: int | None = None):
    """Task model (a new, seeded head on the pretrained body), its tokenizer, and transformers'
    loading report (which weights were newly initialised or left unused). `max_length`: the
    task's, checked against the model's positions before any weight is read."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    # Before any weight is read: a GPT-2 folder, or a Hub baseline with fewer positions than max_length.
    require_supported_model(model_dir, max_lengths={task: max_length} if max_length else None)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if task == "sst2":
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=2, output_loading_info=True)
    else:
        model, info = AutoModelForQuestionAnswering.from_pretrained(model_dir, output_loading_info=True)
    if len(tokenizer) > model.config.vocab_size:
        raise DataError(
            f"{model_dir}: tokenizer has {len(tokenizer)} tokens but the model's embedding has "
            f"{model.config.vocab_size} rows; the tokenizer does not belong to this model"
        )
    return model, tokenizer, info


def checkpoint_sizes(model_dir: str) -> dict[str, int]:
    """Tensor name -> element count of the saved weights (safetensors, else PyTorch .bin)."""
    from safetensors import safe_open

    sizes: dict[str, int] = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            for name in handle.keys():
                sizes[name] = math.prod(handle.get_slice(name).get_shape())
    if not sizes:
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


def download_model(repo_id: str, out_dir: str, revision: str | None = None) -> None:
    """Save a Hub model (weights as safetensors) and its tokenizer with save_pretrained (local rule).

    Loading with the pretraining head kept when the architecture has one, so the parameter report
    can say what fine-tuning drops; only the files a fine-tune needs are written (no TF/Flax copies).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoTokenizer

    log.info("downloading model %s (revision %s)", repo_id, revision)
    config = AutoConfig.from_pretrained(repo_id, revision=revision)  # config.json only, before the weights
    require_supported_model_type(config.model_type, repo_id)
    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    try:
        model = AutoModelForPreTraining.from_pretrained(repo_id, revision=revision)
    except ValueError:  # no pretraining head registered for this architecture
        model = AutoModel.from_pretrained(repo_id, revision=revision)
    save_model(model, tokenizer, Path(out_dir))


# ----------------------------------------------------------------------------- tasks


class Sst2:
    name = "sst2"

    def __init__(self, tokenizer, settings: FinetuneSettings, train_file: str, validation_file: str):
        from .task_data import read_sst2_tsv

        self.train = read_sst2_tsv(train_file)[: settings.max_train_samples]
        self.validation = read_sst2_tsv(validation_file)[: settings.max_eval_samples]
        self.tokenizer, self.settings = tokenizer, settings

    def _encode(self, rows):
        enc = self.tokenizer([s for s, _ in rows], truncation=True, max_length=self.settings.max_length,
                             padding="max_length", return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def train_tensors(self) -> dict:
        return {**self._encode(self.train), "labels": torch.tensor([label for _, label in self.train])}

    def eval_inputs(self) -> dict:
        return self._encode(self.validation)

    def score(self, outputs: list) -> tuple[dict, object]:
        from .metrics import load

        logits = torch.cat([o.logits for o in outputs]).float()
        predicted = logits.argmax(-1).numpy()
        gold = np.array([label for _, label in self.validation])
        metrics = load("sst2").compute(predictions=predicted, references=gold)
        predictions = [{"sentence": s, "label": int(g), "prediction": int(p)}
                       for (s, g), p in zip(self.validation, predicted)]
        return metrics, predictions


class Squad:
    name = "squad"

    def __init__(self, tokenizer, settings: FinetuneSettings, train_file: str, validation_file: str):
        from .task_data import read_squad_json, squad_examples

        self.train = squad_examples(read_squad_json(train_file))[: settings.max_train_samples]
        self.validation = squad_examples(read_squad_json(validation_file))[: settings.max_eval_samples]
        self.tokenizer, self.settings = tokenizer, settings

    def train_tensors(self) -> dict:
        from .qa import train_features

        features = train_features(self.tokenizer, self.train, self.settings.max_length, self.settings.doc_stride)
        return {k: torch.tensor(v) for k, v in features.items()}

    def eval_inputs(self) -> dict:
        from .qa import eval_features

        inputs, self._example_index, self._offsets = eval_features(
            self.tokenizer, self.validation, self.settings.max_length, self.settings.doc_stride
        )
        return {k: torch.tensor(v) for k, v in inputs.items()}

    def score(self, outputs: list) -> tuple[dict, object]:
        from .qa import decode_answers
        from .squad_metrics import squad_scores

        start = torch.cat([o.start_logits for o in outputs]).float().numpy()
        end = torch.cat([o.end_logits for o in outputs]).float().numpy()
        predictions = decode_answers(self.validation, self._example_index, self._offsets, start, end,
                                     self.settings.n_best, self.settings.max_answer_length)
        answers = {e["id"]: e["answers"]["text"] for e in self.validation}
        return squad_scores(answers, predictions), predictions


TASKS = {"sst2": Sst2, "squad": Squad}


# ----------------------------------------------------------------------------- the loop


class FineTuner:
    def __init__(self, task, model, settings: FinetuneSettings, *, train_data: dict, eval_data: dict,
                 device: str, seed: int, reduction=None):
        from transformers import get_linear_schedule_with_warmup

        self.task, self.settings, self.seed, self.reduction = task, settings, seed, reduction
        self.precision = resolve_precision(settings.precision, resolve_device(device))
        self.accelerator = make_accelerator(resolve_device(device))
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.train_data, self.eval_data = train_data, eval_data
        n = len(next(iter(self.train_data.values())))
        self.steps_per_epoch = n // (settings.batch_size * self.world)
        if self.steps_per_epoch == 0:
            raise DataError(f"{task.name}: {n} training features are fewer than one batch of "
                            f"{settings.batch_size} x {self.world} processes; lower batch_size")
        total = self.steps_per_epoch * settings.epochs
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                      weight_decay=settings.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, round(settings.warmup_ratio * total), total)

    def autocast(self):
        device_type = self.accelerator.device.type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _batch(self, data: dict, index: torch.Tensor) -> dict:
        batch = {k: v[index].to(self.accelerator.device) for k, v in data.items()}
        if self.reduction is not None:
            batch["input_ids"] = self.reduction.map_ids(batch["input_ids"])
        return batch

    def train_epoch(self, epoch: int) -> float:
        self.model.train()
        order = torch.randperm(len(self.train_data["input_ids"]),
                               generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        bs, total = self.settings.batch_size, torch.zeros((), device=self.accelerator.device)
        for step in range(self.steps_per_epoch):
            start = (step * self.world + self.rank) * bs
            with self.autocast():
                loss = self.model(**self._batch(self.train_data, order[start : start + bs])).loss
            self.accelerator.backward(loss)
            self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            total += loss.detach()
        return self.accelerator.reduce(total, reduction="mean").item() / self.steps_per_epoch

    @torch.no_grad()
    def evaluate(self) -> tuple[dict, object]:
        model = self.accelerator.unwrap_model(self.model).eval()
        n, bs = len(self.eval_data["input_ids"]), self.settings.eval_batch_size
        outputs = []
        for start in range(0, n, bs):
            with self.autocast():
                out = model(**self._batch(self.eval_data, torch.arange(start, min(start + bs, n))))
            outputs.append(type(out)(**{k: v.float().cpu() for k, v in out.items()}))
        return self.task.score(outputs)

    def fit(self) -> tuple[list[dict], dict, object]:
        history, metrics, predictions = [], {}, None
        for epoch in range(self.settings.epochs):
            started = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            seconds = time.perf_counter() - started
            metrics, predictions = self.evaluate()
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_seconds": seconds,
                   **{k: v for k, v in metrics.items() if isinstance(v, float)}}
            history.append(row)
            log.info("%s epoch %d: %s", self.task.name, epoch + 1,
                     ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
        return history, metrics, predictions


def finetune(*, task: str, model_dir: str, train_file: str, validation_file: str, out_dir: str,
             settings: dict, seed: int, device: str, model_name: str = "model") -> dict:
    """Stage entry: fine-tune one model on one task with one seed; write metrics and predictions."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    started = time.time()
    settings = FinetuneSettings.from_config(settings)
    torch.manual_seed(seed)  # the task head's initialisation
    model, tokenizer, loading_info = load_task_model(task, model_dir, settings.max_length)
    params = parameter_accounting(model_dir, model, loading_info)
    task_data = TASKS[task](tokenizer, settings, train_file, validation_file)
    train_data, eval_data = task_data.train_tensors(), task_data.eval_inputs()
    reduction = None
    if settings.reduce_vocab:
        from .vocab_reduction import VocabReduction

        used = torch.cat([train_data["input_ids"].flatten(), eval_data["input_ids"].flatten()]).unique()
        reduction = VocabReduction(model, used.tolist(), tokenizer.all_special_ids)
        reduction.apply()
    tuner = FineTuner(task_data, model, settings, train_data=train_data, eval_data=eval_data, device=device,
                      seed=seed, reduction=reduction)
    history, metrics, predictions = tuner.fit()
    if not tuner.accelerator.is_main_process:
        return metrics
    model = tuner.accelerator.unwrap_model(tuner.model)
    result = {
        "task": task, "model": model_name, "model_dir": model_dir, "seed": seed, **metrics,
        "epochs": history,
        "finetune_wall_time_s": time.time() - started,
        "train_examples": len(task_data.train), "validation_examples": len(task_data.validation),
        "compute_precision": tuner.precision, "processes": tuner.world,
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
    write_text(out / "epochs.csv", _csv(history))
    write_json(out / "metrics.json", result)  # last: its presence means the run is complete
    return result


def save_model(model, tokenizer, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    save_tokenizer(tokenizer, partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def _csv(rows: list[dict]) -> str:
    columns = list(rows[0])
    return "\n".join([",".join(columns)] + [",".join(f"{r[c]}" for c in columns) for r in rows]) + "\n"


def summarize_seeds(metric_files: list[str], out: str) -> dict:
    """Mean and standard deviation over seeds of every numeric metric."""
    runs = [read_json(path) for path in metric_files]
    numeric = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("seed", "processes")]
    summary = {
        "task": runs[0]["task"], "model": runs[0]["model"], "model_dir": runs[0]["model_dir"],
        "seeds": [r["seed"] for r in runs],
        "mean": {k: float(np.mean([r[k] for r in runs])) for k in numeric},
        "std": {k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0 for k in numeric},
        "parameters": runs[0]["parameters"],
        "per_seed": {str(r["seed"]): {k: r[k] for k in numeric} for r in runs},
        "vocab_reduction": runs[0].get("vocab_reduction"),
        "environment": environment_info(),
    }
    write_json(out, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """`python -m bertflow.finetune SPEC.json`: the entry a distributed launcher starts per process."""
    from .distributed import entry_point

    return entry_point(finetune, argv)


if __name__ == "__main__":
    sys.exit(main())
