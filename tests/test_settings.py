"""Stage settings from config sections: unknown keys rejected, dataclass defaults equal to the schema's."""

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


def dataclass_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


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
    assert Settings.from_config({"epochs": 2, "num_processes": 2}).epochs == 2  # the launcher's key


def test_a_key_without_default_must_be_given():
    with pytest.raises(ConfigError, match=r"missing keys \['max_length'\]"):
        FinetuneSettings.from_config({"epochs": 1})
    assert FinetuneSettings.from_config({"max_length": 64}).doc_stride == 128


def test_pretrain_defaults_equal_the_schema():
    schema, ours = schema_defaults("pretrain"), dataclass_defaults(Settings)
    assert {k: ours[k] for k in schema if k in ours} == {k: v for k, v in schema.items() if k in ours}
    assert "epochs" in schema and "epochs" in ours  # the comparison covers the keys


@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_finetune_defaults_equal_each_tasks_schema(task):
    schema, ours = schema_defaults("finetune", task), dataclass_defaults(FinetuneSettings)
    assert "max_length" in schema and "max_length" not in ours  # per task: no dataclass default
    shared = set(schema) & set(ours)
    assert {"epochs", "learning_rate", "batch_size"} <= shared
    assert {k: ours[k] for k in shared} == {k: schema[k] for k in shared}


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
