"""A stage's settings dataclass from its config section: one `from_config` for every stage.

Unknown keys are an error (a typo would otherwise be dropped silently and the default used), and so
are missing keys that have no default. The defaults and meanings of the keys live in
config/config.schema.yaml; Snakemake fills them in before a stage starts, and tests/test_settings.py
checks that the dataclasses' own defaults (used by the benchmarks and tests) agree with it.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from .errors import ConfigError

T = TypeVar("T")


def from_config(cls: type[T], section: dict, where: str, *, ignore: tuple[str, ...] = ()) -> T:
    """`cls(**section)` after checking the keys; `where` names the section in errors ("pretrain",
    "finetune.sst2"), `ignore` lists keys of the section that are not the dataclass's business."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - set(fields) - set(ignore))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; expected some of {sorted(fields)}")
    missing = sorted(name for name, f in fields.items() if name not in section
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: missing keys {missing} (no default)")
    return cls(**{k: v for k, v in section.items() if k in fields})
