import glob
import os
import re

from snakemake.logging import logger
from snakemake.utils import min_version

from bertflow.checks import (
    check_device,
    check_multinode,
    coerce_overrides,
    complete_config,
    load_schema,
    unused_source_warnings,
)
from bertflow.errors import ConfigError
from bertflow.task_data import CUSTOM_DATA_KEYS, DATA_SOURCE_KEYS, prepared_files
from bertflow.tasks import GLUE_TASKS, configured_tasks, section_key, task_section

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


def plans_rule(name):
    return any(job.rule.name == name for job in workflow.dag.needrun_jobs())


def executor_name():
    """The executor plugin's name ("local", "slurm", ...)."""
    plugin = workflow.executor_plugin
    return "local" if plugin is None else plugin.cli_prefix


onstart:
    # A GPU is checked only where jobs run here: with a cluster executor the head node may have
    # none while the compute nodes do (there, each stage checks its own node). `-n` skips onstart;
    # a run of CPU-only stages (the corpus and tokenizer on a login node) is not refused either.
    if workflow.local_exec and plans_device_jobs():
        check_device(config["device"])
    if plans_rule("pretrain"):
        try:
            check_multinode(config["pretrain"], executor_name(), results("blocks"))
        except ConfigError as err:
            raise WorkflowError(f"{err}\n(config read from {config_sources()})") from None


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
TASKS = configured_tasks(FINETUNE)  # finetune.tasks, checked at start (bertflow.checks)


def task_data(task, split):
    return results("data", task, prepared_files(task)[split == "validation"])


def is_custom(task):
    return task in FINETUNE["custom"]


def local_file(key, path):
    return expand_globs(key, [path])[0]


def task_data_sources(wildcards):
    """Raw inputs of a task's data preparation: Hub download, local files, or nothing (generated)."""
    task, section = wildcards.task, task_section(FINETUNE, wildcards.task)
    key = section_key(FINETUNE, task)
    if is_custom(task):
        return {split: local_file(f"{key}.{split}", section[split]) for split in ("train", "validation")}
    if section["source"] == "hub":
        return {"hub": results("downloads", task)}
    if section["source"] != "local":
        return {}
    local = section["local"]
    # SQuAD's validation file is optional (the train file is split by article); MNLI has two.
    required = ["train"] + (["validation"] if task in GLUE_TASKS else [])
    required += ["validation_mismatched"] if task == "mnli" else []
    for split in required:
        if not local[split]:
            raise WorkflowError(f"config {key}.local.{split}: give the {split.replace('_', ' ')} file")
    return {
        split: local_file(f"{key}.local.{split}", path)
        for split, path in local.items()
        if split in ("train", "validation", "validation_mismatched") and path
    }


def task_data_params(wildcards):
    """Only the data-source keys of the task's section, so hyperparameters do not redo the data
    (nor the Hub name the card gives local files: local.dataset, local.dataset_config)."""
    section = task_section(FINETUNE, wildcards.task)
    if is_custom(wildcards.task):
        return {"source": "custom", "custom": {k: section[k] for k in CUSTOM_DATA_KEYS if k != "label"}}
    params = {k: section[k] for k in sorted(DATA_SOURCE_KEYS) if k in section}
    params["local"] = {k: v for k, v in params["local"].items() if k not in ("dataset", "dataset_config")}
    return params


def data_keys(task):
    return CUSTOM_DATA_KEYS if is_custom(task) else DATA_SOURCE_KEYS


def task_train_settings(wildcards):
    """Only the training keys, so a data-source edit alone does not look like new hyperparameters."""
    section = task_section(FINETUNE, wildcards.task)
    return dict(sorted((k, v) for k, v in section.items() if k not in data_keys(wildcards.task)))


def task_definition(wildcards):
    """A custom task's definition for the fine-tuning stage (its kind, columns, display name); None
    for the built-in tasks, which bertflow.tasks defines."""
    if not is_custom(wildcards.task):
        return None
    section = FINETUNE["custom"][wildcards.task]
    return {k: section[k] for k in ("kind", "text_columns", "label")}


def hub_dataset(wildcards):
    """The Hub dataset of a task (name, config, revision); a GLUE task's config defaults to its name."""
    hub, glue = FINETUNE[wildcards.task]["hub"], wildcards.task in GLUE_TASKS
    return {
        "name": hub["name"],
        "config": hub["config"] or (wildcards.task if glue else None),
        "revision": hub["revision"],
    }


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
