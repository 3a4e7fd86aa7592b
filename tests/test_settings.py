"""Stage settings from config sections: unknown keys rejected, dataclass defaults equal to the schema's."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from bertflow.errors import ConfigError
from bertflow.finetune import FinetuneSettings
from bertflow.pretrain import Settings

from support.workflow import REPO

SCHEMA = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())


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
