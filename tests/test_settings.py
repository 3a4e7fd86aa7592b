"""Stage settings from config sections: unknown keys rejected; every default, and every key that changes\nno result, read from the schema, their one source."""

from __future__ import annotations

import dataclasses

import pytest

from bertflow.checks import load_schema, schema_problems
from bertflow.errors import ConfigError
from bertflow.finetune import FinetuneSettings
from bertflow.pretrain import Settings

from support.workflow import REPO

SCHEMA_FILE = REPO / "config" / "config.schema.yaml"
SCHEMA = load_schema(str(SCHEMA_FILE))  # $refs merged in


def schema_defaults(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


def test_unknown_keys_are_rejected_by_both_stages():
    with pytest.raises(ConfigError, match=r"pretrain: unknown keys \['epoch'\]"):
        Settings.from_config({"epoch": 3})
    with pytest.raises(ConfigError, match=r"finetune.sst2: unknown keys \['learning_rat'\]"):
        FinetuneSettings.from_config({"max_length": 64, "learning_rat": 1e-4}, "finetune.sst2")
    with pytest.raises(ConfigError, match=r"finetune.glue: not a section"):
        FinetuneSettings.from_config({}, "finetune.glue")
    assert Settings.from_config({"epochs": 2, "num_processes": 2}).epochs == 2  # the launcher's key


@pytest.mark.parametrize("cls", [Settings, FinetuneSettings])
def test_the_dataclasses_carry_no_defaults_of_their_own(cls):
    """The schema is the one source of defaults: a default in the code would be a second one."""
    with_default = [f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_default == []


def test_pretrain_settings_are_filled_from_the_schema():
    settings, schema = Settings.from_config({"epochs": 2}), schema_defaults("pretrain")
    assert settings.epochs == 2 and schema["epochs"] != 2
    others = set(schema) - {"epochs", "num_processes", "nodes"}  # the launcher's keys
    assert {k: getattr(settings, k) for k in others} == {k: schema[k] for k in others}
    assert Settings.from_config({}).model is not Settings.from_config({}).model  # copies, not the schema's own


@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_finetune_settings_are_filled_from_each_tasks_schema(task):
    settings, schema = FinetuneSettings.from_config({}, f"finetune.{task}"), schema_defaults("finetune", task)
    fields = {f.name for f in dataclasses.fields(FinetuneSettings)}
    assert {"max_length", "epochs", "learning_rate"} <= set(schema) & fields
    assert {k: getattr(settings, k) for k in fields if k in schema} == {k: schema[k] for k in fields if k in schema}
    assert {k: getattr(settings, k) for k in fields - set(schema)} == \
        ({"doc_stride": None, "n_best": None, "max_answer_length": None, "null_score_diff_threshold": None}
         if task == "sst2" else {})


def test_the_keys_that_change_no_result_are_the_schemas():
    from bertflow.settings import result_neutral_keys, weight_neutral_keys

    neutral = set(result_neutral_keys("pretrain"))
    assert neutral == {"log_every_steps", "checkpoint_every_steps", "tensorboard", "compile", "compile_mode"}
    assert set(weight_neutral_keys("pretrain")) == neutral | {"eval_every_steps"}  # adds rows, not weights
    code = (REPO / "rules" / "pretrain.smk").read_text() + (REPO / "src" / "bertflow" / "pretrain.py").read_text()
    lists = [line for line in code.splitlines() if sum(f'"{key}"' in line for key in neutral) > 1]
    assert lists == [], "the rule and the stage read the keys from the schema, not from a list of their own"


def test_the_start_fills_the_defaults_as_snakemake_validate_does():
    import copy

    import yaml
    from snakemake.utils import validate

    from bertflow.checks import fill_defaults

    for given in ({}, yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())):
        ours, snakemakes = copy.deepcopy(given), copy.deepcopy(given)
        fill_defaults(ours, SCHEMA)
        validate(snakemakes, str(SCHEMA_FILE))
        assert ours == snakemakes and "doc_stride" in ours["finetune"]["squad"]


def test_snakemake_fills_the_shared_task_defaults_through_the_ref():
    from snakemake.utils import validate

    config = {"finetune": {"sst2": {"epochs": 5}, "squad": {}}}
    validate(config, str(SCHEMA_FILE))
    sst2, squad = config["finetune"]["sst2"], config["finetune"]["squad"]
    assert (sst2["epochs"], squad["epochs"]) == (5, 3) and sst2["learning_rate"] == squad["learning_rate"] == 1e-4
    assert (sst2["max_length"], squad["max_length"], squad["doc_stride"]) == (64, 384, 128), "each task's own keys"


@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_unknown_task_keys_are_refused_by_both_validators(task):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    with pytest.raises(WorkflowError, match=r"Unevaluated properties are not allowed \('epoch' was unexpected\)"):
        validate({"finetune": {task: {"epoch": 2}}}, str(SCHEMA_FILE))
    assert schema_problems({"finetune": {task: {"epoch": 2}}}, SCHEMA) == [
        f"finetune.{task}: Additional properties are not allowed ('epoch' was unexpected) "
        f"({' '.join(SCHEMA['properties']['finetune']['properties'][task]['description'].split())})"]


def test_every_stage_setting_is_a_schema_key():
    """A setting the schema does not document (a benchmark-only switch) has no place in a stage's settings."""
    pretrain = set(SCHEMA["properties"]["pretrain"]["properties"])
    tasks = SCHEMA["properties"]["finetune"]["properties"]
    task = set(tasks["sst2"]["properties"]) | set(tasks["squad"]["properties"])
    assert {f.name for f in dataclasses.fields(Settings)} - pretrain == set()
    assert {f.name for f in dataclasses.fields(FinetuneSettings)} - task == set()
