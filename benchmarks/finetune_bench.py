"""Fine-tuning speed: our `finetune` stage against the Trainer scripts users run today.

    python -m benchmarks.finetune_bench --tasks sst2 squad --rounds 3 \\
        --sst2-dir /work/shared/data/sst2 --squad-file /work/shared/data/squad/squad-v1.1-dev-part1.json
    python -m benchmarks.finetune_bench --tasks sst2 --families bert roberta modernbert ...

* **baseline, SST-2**: examples/pytorch/text-classification/run_glue.py: a `datasets.Dataset`
  tokenized with `map` (truncation, no padding), `Trainer` with `DataCollatorWithPadding`
  (pad_to_multiple_of=8 with bf16), `TrainingArguments` defaults (fused AdamW, linear decay).
* **baseline, SQuAD**: examples/pytorch/question-answering/run_qa.py: features padded to
  max_length (its `prepare_train_features` / `prepare_validation_features`; built here with
  `bertflow.qa`, the same windows, because `return_overflowing_tokens` drops context ends under
  tokenizers 0.23), `default_data_collator`, answers decoded from `Trainer.predict`'s logits.
* **ours**: `bertflow.finetune.finetune`, the stage's code with the stage's defaults.

Both sides: the same model folder (a `bertflow.presets` architecture, randomly initialised, with a
WordPiece tokenizer trained on the task's training text), the same rows, epochs, batch size,
learning rate, weight decay, warm-up share, seed and precision, each run in a fresh process.
`--families`: one model folder per encoder family at the preset's shape (benchmarks.families:
the family's own config class and kind of tokenizer, trained on the same text); `bert` is the
folder above. The sides run as interleaved pairs (A B, B A, ...), each round running every
family's pair; ratios are per pair, reported as the median with the min-max. Training examples/s = training features x epochs / training time; evaluation
examples/s = validation features / time of one full evaluation pass (forward passes and decoding).
Memory: peak RSS of the run's process on CPU, `torch.cuda.max_memory_allocated` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository on sys.path, to import `benchmarks`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bertflow.errors import ConfigError, PipelineError
from benchmarks.families import FAMILIES
from benchmarks.pairs import interleaved, peak_memory_bytes, ratio_summary, ratio_text, run_worker

SIDES = ("baseline", "ours")
BASELINE_NAMES = {"sst2": "Trainer + DataCollatorWithPadding (run_glue.py)",
                  "squad": "Trainer + default_data_collator, max_length features (run_qa.py)"}
METRIC = {"sst2": "accuracy", "squad": "exact_match"}


# --------------------------------------------------------------------------- setup (parent process)


def prepare_task(task: str, args, workdir: Path) -> dict:
    """Data files, and per family a tokenizer trained on the training text and a fresh model: what
    both sides read (`model_dirs`: family -> model folder)."""
    from bertflow.io import write_json
    from bertflow.task_data import prepare_squad, prepare_text_task, read_squad_json, split_articles
    from bertflow.tasks import GLUE_TASKS

    folder = workdir / task
    folder.mkdir(parents=True, exist_ok=True)
    if task == "sst2":
        train, validation = str(folder / "train.tsv"), str(folder / "validation.tsv")
        if args.sst2_dir:
            prepare_text_task(GLUE_TASKS["sst2"], source="local", out_train=train, out_validation=validation,
                              local_files={"train": f"{args.sst2_dir}/train.tsv",
                                           "validation": f"{args.sst2_dir}/dev.tsv"})
        else:
            prepare_text_task(GLUE_TASKS["sst2"], source="generated", out_train=train, out_validation=validation,
                              generated={"train_examples": args.train_samples["sst2"] or 400,
                                         "validation_examples": args.eval_samples["sst2"] or 100, "seed": args.seed})
    else:
        train, validation = str(folder / "train.json"), str(folder / "validation.json")
        if args.squad_file:
            train_split, validation_split = split_articles(read_squad_json(args.squad_file), args.squad_train_articles,
                                                           args.squad_file)
            write_json(train, train_split)
            write_json(validation, validation_split)
        else:
            prepare_squad(source="generated", out_train=train, out_validation=validation,
                          generated={"train_articles": 20, "validation_articles": 5, "seed": args.seed})
    text = training_text(task, train, folder / "text.txt")
    model_dirs = {family: make_model(text, folder, args) if family == "bert" else
                  make_family_model(family, text, folder / family, args) for family in args.families}
    return {"train_file": train, "validation_file": validation, "model_dirs": model_dirs}


def training_text(task: str, train_file: str, out: Path) -> str:
    from bertflow.task_data import read_prepared_tsv, read_squad_json, squad_examples

    if task == "sst2":
        lines = [example.texts[0] for example in read_prepared_tsv(train_file)]
    else:
        examples = squad_examples(read_squad_json(train_file))
        lines = list(dict.fromkeys(e["context"] for e in examples)) + [e["question"] for e in examples]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(out)


def make_model(text: str, folder: Path, args) -> str:
    """A WordPiece tokenizer trained on the task's training text and a randomly initialised
    BertForMaskedLM of `--preset` with `--model-vocab` embedding rows (BERT's 30,522 by default,
    so the embedding and its optimizer cost are those of a real BERT checkpoint)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from bertflow.presets import architecture
    from bertflow.tokenizer import BERT_ROLES, train_tokenizer

    model_dir = folder / "model"
    tokenizer = train_tokenizer(train_file=text, validation_file=text, out_dir=str(model_dir),
                                out_report=str(folder / "tokenizer_report.json"), vocab_size=args.tokenizer_vocab,
                                lowercase=True, min_frequency=2, special_tokens=list(BERT_ROLES.values()),
                                model_max_length=512)
    torch.manual_seed(args.seed)
    config = BertConfig(vocab_size=max(len(tokenizer), args.model_vocab), pad_token_id=tokenizer.pad_token_id,
                        **architecture(args.preset))
    BertForMaskedLM(config).save_pretrained(model_dir)
    return str(model_dir)


def make_family_model(family: str, text: str, folder: Path, args) -> str:
    """A `family` model at `--preset`'s shape with `--model-vocab` embedding rows, as `make_model`
    builds BERT, its tokenizer of the family's kind (`--tokenizer-vocab`) trained on the same text."""
    from benchmarks.families import preset_shape, save_family_model
    from bertflow.presets import architecture

    shape = preset_shape(architecture(args.preset), max_positions=512, vocab_size=args.tokenizer_vocab,
                         vocab_rows=args.model_vocab)
    lines = Path(text).read_text(encoding="utf-8").splitlines()
    return save_family_model(family, folder / "model", lines, shape, seed=args.seed)


def task_settings(task: str, args) -> dict:
    """The fine-tuning settings both sides use (keys of bertflow.finetune.FinetuneSettings)."""
    settings = {"epochs": args.epochs, "batch_size": args.batch_size[task], "eval_batch_size": args.eval_batch_size,
                "learning_rate": args.lr, "weight_decay": args.weight_decay, "warmup_ratio": args.warmup_ratio,
                "max_length": args.max_length[task], "max_train_samples": args.train_samples[task],
                "max_eval_samples": args.eval_samples[task], "precision": args.precision}
    if task == "squad":
        settings["doc_stride"] = args.doc_stride
    return settings


# --------------------------------------------------------------------------- the two sides (worker process)


def run_ours(spec: dict) -> dict:
    from bertflow.finetune import finetune

    with tempfile.TemporaryDirectory() as out:
        result = finetune(task=spec["task"], model_dir=spec["model_dir"], train_file=spec["train_file"],
                          validation_file=spec["validation_file"], out_dir=out, settings=spec["settings"],
                          seed=spec["seed"], device=spec["device"])
    epochs = result["epochs"]
    steps = result["train_features"] // spec["settings"]["batch_size"]  # ours drops the last partial batch
    return {
        "train_examples_per_s": steps * spec["settings"]["batch_size"] * len(epochs) / sum(e["train_seconds"] for e in epochs),
        "eval_examples_per_s": result["validation_features"] / epochs[-1]["eval_seconds"],
        "train_features": result["train_features"], "eval_features": result["validation_features"],
        "metrics": {k: result[k] for k in ("accuracy", "f1", "exact_match") if k in result},
        "final_train_loss": epochs[-1]["train_loss"], "precision": result["compute_precision"],
        "unpadded": result["unpadded"],
    }


def run_trainer(spec: dict) -> dict:
    import datasets
    import torch
    from transformers import (AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments, default_data_collator)

    from bertflow.finetune import TASKS, FinetuneSettings
    from bertflow.runtime import resolve_precision

    task, device, settings = spec["task"], spec["device"], FinetuneSettings.from_config(spec["settings"], f"finetune.{spec['task']}")
    precision = resolve_precision(settings.precision, device)
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    data = TASKS[task](tokenizer, settings, spec["train_file"], spec["validation_file"])  # the same rows as ours
    torch.manual_seed(spec["seed"])  # the task head's initialisation, as in ours
    if task == "sst2":
        model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=2)

        def tokenize(batch):  # run_glue.py's preprocess_function with padding=False
            return tokenizer(batch["sentence"], truncation=True, max_length=settings.max_length)

        def dataset(rows):
            table = datasets.Dataset.from_dict({"sentence": [e.texts[0] for e in rows],
                                                "label": [data.labels.index(e.label) for e in rows]})
            return table.map(tokenize, batched=True, remove_columns=["sentence"])

        train, evaluation = dataset(data.train), dataset(data.validation)
        collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if precision == "bf16" else None)
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(spec["model_dir"])
        features = data.build_features()
        train = datasets.Dataset.from_dict({k: v.tolist() for k, v in features["train"].items()})
        evaluation = datasets.Dataset.from_dict({k: v.tolist() for k, v in features["eval"].items()})
        collator = default_data_collator
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.eval_batch_size, num_train_epochs=settings.epochs,
            learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
            warmup_steps=settings.warmup_ratio, seed=spec["seed"], bf16=precision == "bf16",
            use_cpu=device == "cpu", save_strategy="no", report_to="none", disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator, processing_class=tokenizer)
        train_metrics = trainer.train().metrics
        started = time.perf_counter()
        output = trainer.predict(evaluation)
        outputs = {"logits": torch.from_numpy(output.predictions)} if task == "sst2" else {
            "start_logits": torch.from_numpy(output.predictions[0]), "end_logits": torch.from_numpy(output.predictions[1])}
        metrics, _ = data.score(outputs, features if task == "squad" else {})
        eval_seconds = time.perf_counter() - started
    return {
        "train_examples_per_s": train_metrics["train_samples_per_second"],
        "eval_examples_per_s": len(evaluation) / eval_seconds,
        "train_features": len(train), "eval_features": len(evaluation),
        "metrics": {k: metrics[k] for k in ("accuracy", "f1", "exact_match") if k in metrics},
        "final_train_loss": train_metrics["train_loss"], "precision": precision,
        "optimizer": str(getattr(args.optim, "value", args.optim)),
    }


def run_order(rounds: int, families: list[str]) -> list[tuple[int, str, str]]:
    """(round, family, side) in run order: every round runs each family's pair, the side that goes
    first alternating per round (benchmarks.pairs.interleaved), so a slow spell of the machine
    spreads over the families instead of bending one of them."""
    sides = interleaved(rounds, SIDES)
    return [(round_, family, side) for round_ in range(rounds) for family in families
            for pair_round, side in sides if pair_round == round_]


def worker(spec_path: str, out_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    if spec["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = (run_ours if spec["side"] == "ours" else run_trainer)(spec)
    result["peak_memory_bytes"] = peak_memory_bytes(spec["device"])
    Path(out_path).write_text(json.dumps(result))


# --------------------------------------------------------------------------- results


def summarise(task: str, runs: list[dict], family: str = "bert") -> dict:
    """Per side the median of each figure; per pair (round) the ours / baseline ratios. `runs`:
    those of one family."""
    by_round: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["side"]] = run
    pairs = [pair for pair in by_round.values() if set(pair) == set(SIDES)]
    out = {"task": task, "family": family, "baseline": BASELINE_NAMES[task], "metric": METRIC[task],
           "rounds": len(pairs), "sides": {}}
    if not pairs:  # a run stopped before its first pair completed
        return out
    for side in SIDES:
        rows = [pair[side] for pair in pairs]
        out["sides"][side] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("train_examples_per_s", "eval_examples_per_s", "peak_memory_bytes")
        } | {"metric_per_round": [r["metrics"][METRIC[task]] for r in rows],
             "metrics_per_round": [r["metrics"] for r in rows],
             "train_features": rows[0]["train_features"], "eval_features": rows[0]["eval_features"]}
    out["ours_unpadded"] = pairs[0]["ours"].get("unpadded")
    for key in ("train_examples_per_s", "eval_examples_per_s", "peak_memory_bytes"):
        out[key.replace("_examples_per_s", "_speedup").replace("peak_memory_bytes", "memory_ratio")] = ratio_summary(
            [pair["ours"][key] / pair["baseline"][key] for pair in pairs])
    return out


def format_report(summaries: list[dict], device: str) -> str:
    memory = "CUDA max allocated" if device == "cuda" else "process peak RSS"
    lines = []
    for s in summaries:
        lines += [f"{s['task']}, {s.get('family', 'bert')}: ours vs {s['baseline']}, {s['rounds']} interleaved pairs",
                  f"  {'side':9s} {'train ex/s':>11s} {'eval ex/s':>10s} {'peak memory':>12s}  "
                  f"{s['metric']} per round"]
        for side in SIDES:
            r = s["sides"][side]
            lines.append(f"  {side:9s} {r['train_examples_per_s']:11,.1f} {r['eval_examples_per_s']:10,.1f} "
                         f"{r['peak_memory_bytes'] / 2**20:9,.0f} MiB  "
                         + ", ".join(f"{m:.2f}" for m in r["metric_per_round"]))
        lines += [f"  ours / baseline: training {ratio_text(s['train_speedup'])}, "
                  f"evaluation {ratio_text(s['eval_speedup'])}, memory {ratio_text(s['memory_ratio'])} ({memory})",
                  f"  features: train {s['sides']['ours']['train_features']}, "
                  f"validation {s['sides']['ours']['eval_features']} (medians per side; ratios per pair)", ""]
    return "\n".join(lines)


def family_table(summaries: list[dict]) -> str:
    """One Markdown row per task and family: each side's medians, then the pair ratios."""
    lines = ["| task | family | ours' encoder | train ex/s Trainer / ours | eval ex/s Trainer / ours "
             "| peak RSS MiB Trainer / ours | metric Trainer / ours | training × Trainer | evaluation × Trainer |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        if not s["sides"]:
            continue
        base, ours = s["sides"]["baseline"], s["sides"]["ours"]
        encoder = {True: "unpadded", False: "padded"}.get(s.get("ours_unpadded"), "?")
        lines.append(
            f"| {s['task']} | {s['family']} | {encoder} "
            f"| {base['train_examples_per_s']:,.1f} / {ours['train_examples_per_s']:,.1f} "
            f"| {base['eval_examples_per_s']:,.1f} / {ours['eval_examples_per_s']:,.1f} "
            f"| {base['peak_memory_bytes'] / 2**20:,.0f} / {ours['peak_memory_bytes'] / 2**20:,.0f} "
            f"| {statistics.median(base['metric_per_round']):.2f} / {statistics.median(ours['metric_per_round']):.2f} "
            f"| {ratio_cell(s['train_speedup'])} | {ratio_cell(s['eval_speedup'])} |")
    return "\n".join(lines)


def report_from_file(path: str) -> str:
    """The report of a finetune_bench.json, its summaries made again from its runs."""
    payload = json.loads(Path(path).read_text())
    runs = payload["runs"]
    groups = dict.fromkeys((run["task"], run.get("family", "bert")) for run in runs)  # in run order
    summaries = [summarise(task, [r for r in runs if (r["task"], r.get("family", "bert")) == (task, family)], family)
                 for task, family in groups]
    complete = [s for s in summaries if s["sides"]]  # families with at least one whole pair
    return format_report(complete, payload["device"]) + "\n" + family_table(complete)


def ratio_cell(summary: dict) -> str:
    return f"{summary['median']:.2f} ({summary['min']:.2f}–{summary['max']:.2f})"


# --------------------------------------------------------------------------- command line


def per_task(value: str, cast=int) -> dict:
    """`64` for both tasks, or `sst2=64,squad=256`."""
    if "=" not in value:
        return {"sst2": cast(value), "squad": cast(value)}
    pairs = dict(item.split("=", 1) for item in value.split(","))
    unknown = set(pairs) - {"sst2", "squad"}
    if unknown:
        raise ConfigError(f"unknown task(s) {sorted(unknown)} in {value!r}; expected sst2=..., squad=...")
    return {task: cast(pairs[task]) if pairs.get(task) not in (None, "", "none") else None for task in ("sst2", "squad")}


def ours_options(items: list[str]) -> dict:
    """`--ours group_by_length=true dynamic_padding=false` -> settings for our side only."""
    from bertflow.finetune import FinetuneSettings
    from benchmarks.sweep import key_values

    return key_values(items, list(FinetuneSettings.__dataclass_fields__), "--ours")


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.finetune_bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=["sst2", "squad"], default=["sst2", "squad"])
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=["bert"], metavar="FAMILY",
                   help=f"encoder families, one model folder each at --preset's shape: {' '.join(FAMILIES)}")
    p.add_argument("--sst2-dir", help="folder with GLUE train.tsv and dev.tsv (default: generated data)")
    p.add_argument("--squad-file", help="official SQuAD v1.1 JSON, split by article (default: generated data)")
    p.add_argument("--squad-train-articles", type=int, default=32, help="with --squad-file: the first N articles train")
    p.add_argument("--train-samples", type=per_task, default=per_task("sst2=4000,squad=2000"),
                   help="first N training rows (questions for SQuAD); N or sst2=N,squad=M")
    p.add_argument("--eval-samples", type=per_task, default=per_task("sst2=872,squad=1000"),
                   help="first N validation rows (questions for SQuAD)")
    p.add_argument("--max-length", type=per_task, default=per_task("sst2=64,squad=384"))
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--batch-size", type=per_task, default=per_task("sst2=32,squad=16"), help="training batch")
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--preset", default="tiny", help="bertflow.presets architecture of the (random) model")
    p.add_argument("--model-vocab", type=int, default=30522, help="embedding rows (at least the tokenizer's size)")
    p.add_argument("--tokenizer-vocab", type=int, default=8000, help="WordPiece vocabulary trained on the task text")
    p.add_argument("--ours", nargs="*", default=[], metavar="KEY=VALUE",
                   help="fine-tuning settings for ours only, e.g. group_by_length=true (JSON values)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved pairs per task")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (CPU)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="both sides; auto = bf16 on a CUDA GPU that supports it, else fp32")
    p.add_argument("--out", default="results/finetune_bench", help="folder for finetune_bench.json")
    p.add_argument("--report", metavar="JSON",
                   help="print the summaries of a finetune_bench.json (one a stopped run left: its complete pairs)")
    p.add_argument("--worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.ours = ours_options(args.ours)
    for name in ("rounds", "epochs", "threads", "eval_batch_size", "squad_train_articles"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be at least 1")
    for path, what in ((args.sst2_dir and Path(args.sst2_dir, "train.tsv"), "--sst2-dir"),
                       (args.sst2_dir and Path(args.sst2_dir, "dev.tsv"), "--sst2-dir"),
                       (args.squad_file and Path(args.squad_file), "--squad-file")):
        if path and not path.is_file():
            raise ConfigError(f"{what}: {path} not found")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.worker:
            worker(*args.worker)
            return 0
        if args.report:
            print(report_from_file(args.report))
            return 0
        return bench(args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def bench(args) -> int:
    import os

    from bertflow.io import write_json
    from bertflow.runtime import resolve_device
    from bertflow.provenance import environment_info

    device = resolve_device(args.device)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    payload = {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "device": device,
               "environment": environment_info(), "runs": [], "summaries": []}
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for task in args.tasks:
            files = prepare_task(task, args, workdir)
            runs = []
            for round_, family, side in run_order(args.rounds, args.families):
                spec = {"task": task, "family": family, "side": side, "device": device, "seed": args.seed,
                        "threads": args.threads, "model_dir": files["model_dirs"][family],
                        "train_file": files["train_file"], "validation_file": files["validation_file"],
                        "settings": {**task_settings(task, args), **(args.ours if side == "ours" else {})}}
                label = f"{task}-{family}-{side}-{round_}"
                result = run_worker("benchmarks.finetune_bench", spec, workdir, label, env=env)
                runs.append({"task": task, "family": family, "side": side, "round": round_, **result})
                print(f"  {task} {family} round {round_ + 1} {side:8s}: train {result['train_examples_per_s']:,.1f} "
                      f"ex/s, eval {result['eval_examples_per_s']:,.1f} ex/s, "
                      f"{result['peak_memory_bytes'] / 2**20:,.0f} MiB, "
                      f"{METRIC[task]} {result['metrics'][METRIC[task]]:.2f}", flush=True)
                payload["runs"].append(runs[-1])
                write_json(out / "finetune_bench.json", payload)  # a stopped run keeps what it measured
            payload["summaries"] += [summarise(task, [r for r in runs if r["family"] == family], family)
                                     for family in args.families]
    write_json(out / "finetune_bench.json", payload)
    print()
    print(format_report(payload["summaries"], device))
    print(family_table(payload["summaries"]))
    print(f"written: {out / 'finetune_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
