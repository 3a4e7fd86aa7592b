import glob
import os
import re

from snakemake.logging import logger
from snakemake.utils import min_version

from bertflow.checks import (
    check_device,
    coerce_overrides,
    complete_config,
    load_schema,
    unused_source_warnings,
)
from bertflow.errors import ConfigError
from bertflow.task_data import DATA_SOURCE_KEYS, TASK_DATA_FILES

min_version("9.0")


# ---- Start-up checks (bertflow.checks): the config must be able to run before any job starts


def config_sources():
    """Where the config came from (the --configfile files, the defaults file, the --config keys)."""
    sources = [str(path) for path in dict.fromkeys(map(str, workflow.configfiles))]
    if workflow.config_settings.config:
        sources.append(f"--config {sorted(workflow.config_settings.config)}")
    return ", ".join(sources)


SCHEMA_FILE = os.path.join(workflow.basedir, "config", "config.schema.yaml")
SCHEMA = load_schema(SCHEMA_FILE)
coerce_overrides(config, workflow.config_settings.config, SCHEMA)
try:
    # Every violation named by key (Snakemake's own validation lists only the first), then defaults.
    complete_config(config, SCHEMA)
except ConfigError as err:
    raise WorkflowError(f"{err}\n(config read from {config_sources()})") from None
if workflow.is_main_process:
    for warning in unused_source_warnings(config):
        logger.warning(f"config warning: {warning}")


def plans_device_jobs():
    """Whether a job that runs on config["device"] (a rule with a `device` param) is planned."""
    return any("device" in job.rule.params.keys() for job in workflow.dag.needrun_jobs())


onstart:
    # A GPU is checked only where jobs run here: with a cluster executor the head node may have
    # none while the compute nodes do (there, each stage checks its own node). `-n` skips onstart;
    # a run of CPU-only stages (the corpus and tokenizer on a login node) is not refused either.
    if workflow.local_exec and plans_device_jobs():
        check_device(config["device"])


RESULTS = config["results_dir"]
CORPUS = config["corpus"]
ENV = "../environment.yml"
# Each rules file appends the outputs that `rule all` must produce.
FINAL_TARGETS = []


def results(*parts):
    return os.path.join(RESULTS, *parts)


def logs(name):
    return os.path.join(RESULTS, "logs", f"{name}.log")


def bench(name):
    return os.path.join(RESULTS, "benchmarks", f"{name}.tsv")


def expand_globs(key, patterns):
    """Expand file globs at parse time so a missing corpus fails before any compute."""
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matched:
            raise WorkflowError(
                f"config {key}: {pattern!r} matches no file "
                f"(working directory {os.getcwd()}); fix the path or the pattern"
            )
        files.extend(matched)
    return files


def gpus(count):
    """GPUs a stage asks for: none when the config pins the CPU (a SLURM node without GPUs
    rejects a job that requests one)."""
    return 0 if config["device"] == "cpu" else count


def seed_for(section):
    """A stage's seed: its own when set, else the global one."""
    own = config[section].get("seed")
    return config["seed"] if own is None else own


# ---- Inputs that depend on the config


def corpus_sources(wildcards):
    if CORPUS["source"] == "hub":
        return {"hub": rules.download_corpus.output[0]}
    if CORPUS["source"] == "local":
        local = CORPUS["local"]
        if not local["train"]:
            raise WorkflowError("config corpus.local.train: give at least one file or glob")
        return {
            "train": expand_globs("corpus.local.train", local["train"]),
            "validation": expand_globs("corpus.local.validation", local["validation"]),
        }
    return {}


# ---- Paths shared between rule files (the contract between stages) ----


def finetune_models():
    """Models fine-tuned in this run: our pretrained one plus the configured baselines."""
    return ["pretrained", *config["finetune"]["baselines"]]


def pretrained_model_dir():
    return results("pretrain", "model")


def finetune_summary(task, model):
    """Seed-aggregated metrics of one model on one task (mean/std over finetune.seeds)."""
    return results("finetune", task, model, "summary.json")


def finetuned_model_dir(task, model, seed):
    """The weights of one fine-tuning run (`seed` a number, or "{seed}" in a rule's output)."""
    return results("finetune", task, model, f"seed{seed}", "model")


def inference_benchmark_csv():
    return results("benchmark", "inference.csv")


def summary_report_md():
    return results("report.md")


# ---- Fine-tuning inputs

FINETUNE = config["finetune"]
TASKS = ["sst2", "squad"]


def task_data(task, split):
    return results("data", task, TASK_DATA_FILES[task][split == "validation"])


def task_data_sources(wildcards):
    """Raw inputs of a task's data preparation: Hub download, local files, or nothing (generated)."""
    section = FINETUNE[wildcards.task]
    if section["source"] == "hub":
        return {"hub": results("downloads", wildcards.task)}
    if section["source"] == "local":
        local = section["local"]
        if not local["train"]:
            raise WorkflowError(f"config finetune.{wildcards.task}.local.train: give the training file")
        files = {"train": expand_globs(f"finetune.{wildcards.task}.local.train", [local["train"]])[0]}
        if local["validation"]:
            files["validation"] = expand_globs(f"finetune.{wildcards.task}.local.validation", [local["validation"]])[0]
        elif wildcards.task == "sst2":
            raise WorkflowError("config finetune.sst2.local.validation: give the validation TSV")
        return files
    return {}


def task_data_params(wildcards):
    """Only the data-source keys of the task's section, so hyperparameters do not redo the data
    (nor the Hub name the card gives local files: local.dataset, local.dataset_config)."""
    params = {k: FINETUNE[wildcards.task][k] for k in sorted(DATA_SOURCE_KEYS)}
    params["local"] = {k: v for k, v in params["local"].items() if k not in ("dataset", "dataset_config")}
    return params


def task_train_settings(wildcards):
    """Only the training keys, so a data-source edit alone does not look like new hyperparameters."""
    return dict(sorted((k, v) for k, v in FINETUNE[wildcards.task].items() if k not in DATA_SOURCE_KEYS))


def model_source_dir(model):
    """Folder of a model by name: our pretrained model, a baseline folder, or the folder where
    download_model saves a Hub baseline."""
    if model == "pretrained":
        return pretrained_model_dir()
    source = os.path.expanduser(FINETUNE["baselines"][model])
    if os.path.isdir(source):
        return source
    if not re.fullmatch(r"\w[\w.-]*(/[\w.-]+)?", source):  # a Hub id is `name` or `owner/name`
        raise WorkflowError(
            f"config finetune.baselines.{model}: {source!r} looks like a local folder but is not "
            f"one (working directory {os.getcwd()}); fix the path, or give a Hub model id"
        )
    return results("downloads", "models", model)


def finetune_model_dir(wildcards):
    return model_source_dir(wildcards.model)


def seed_metrics(wildcards):
    return expand(
        results("finetune", wildcards.task, wildcards.model, "seed{seed}", "metrics.json"),
        seed=FINETUNE["seeds"],
    )


# ---- Inference benchmark inputs


def benchmarked_models(wildcards):
    """name -> model folder: our pretrained model, each baseline, each fine-tuned model (first seed)."""
    models = {"pretrained": pretrained_model_dir()}
    for name in FINETUNE["baselines"]:
        models[name] = model_source_dir(name)
    if config["benchmark"]["include_finetuned"]:
        seed = FINETUNE["seeds"][0]
        for task in TASKS:
            for model in finetune_models():
                models[f"{model}-{task}"] = finetuned_model_dir(task, model, seed)
    return models


def sorted_keys(value):
    """Dicts with their keys sorted at every depth: reordering keys in a config file (e.g. under
    pretrain.model) must not look like a new hyperparameter."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    return value
