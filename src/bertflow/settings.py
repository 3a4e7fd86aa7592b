"""A stage's settings dataclass from its config section, filled from the schema: one source of defaults.

config/config.schema.yaml holds every default and says which keys change no result
(`x-changes-result: false`) or leave the weights alone (`x-changes-weights: false`); the stages'
dataclasses declare fields and types only. `from_config` rejects unknown keys (a typo would
otherwise be dropped silently and the default used) and fills the missing ones from the schema,
so a section Snakemake completed and a partial one (tests, benchmarks) give the same settings.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import TypeVar

from .errors import ConfigError

T = TypeVar("T")


@functools.cache
def _schema() -> dict:
    from .checks import WORKFLOW_CONFIG, load_schema

    return load_schema(str(WORKFLOW_CONFIG / "config.schema.yaml"))


def schema_section(where: str) -> dict:
    """The schema's properties of a dotted config section ("pretrain", "finetune.squad"), $refs merged."""
    node = _schema()
    for key in where.split("."):
        named = node.get("additionalProperties")  # sections the user names (finetune.custom.<name>)
        if key in node.get("properties", {}):
            node = node["properties"][key]
        elif isinstance(named, dict) and "properties" in named:
            node = named
        else:
            raise ConfigError(f"{where}: not a section of config/config.schema.yaml")
    return node["properties"]


def section_defaults(where: str) -> dict:
    return {key: copy.deepcopy(spec["default"]) for key, spec in schema_section(where).items() if "default" in spec}


def result_neutral_keys(where: str) -> tuple[str, ...]:
    """Keys that change neither outputs nor weights: a stage reads them from the config, not from
    its rule's params, so that changing one reruns nothing."""
    return tuple(key for key, spec in schema_section(where).items() if spec.get("x-changes-result") is False)


def weight_neutral_keys(where: str) -> tuple[str, ...]:
    """Keys that leave the weights alone (the result-neutral ones, and those that add outputs only):
    a checkpoint made under other values still resumes."""
    return tuple(key for key, spec in schema_section(where).items()
                 if spec.get("x-changes-result") is False or spec.get("x-changes-weights") is False)


def from_config(cls: type[T], section: dict, where: str, *, ignore: tuple[str, ...] = ()) -> T:
    """`cls(**section)` with the schema's defaults of `where` for the keys not given. `where`
    names the section in the schema and in errors ("pretrain", "finetune.sst2"); `ignore` lists keys
    of the section that are not the dataclass's business. A field the section's schema does not
    have (a key of another task, e.g. SQuAD's doc_stride for SST-2) is None."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - fields - set(ignore))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; expected some of {sorted(fields)}")
    defaults = section_defaults(where)
    values = {name: None for name in fields - set(schema_section(where))}
    values.update({k: v for k, v in {**defaults, **section}.items() if k in fields})
    missing = sorted(name for name in fields if name not in values)
    if missing:
        raise ConfigError(f"{where}: missing keys {missing} (the schema gives them no default)")
    return cls(**{name: values[name] for name in fields})
