"""environment.yml lists exactly the pins of requirements.txt, with no path relative to itself."""

from __future__ import annotations

import sys

import yaml

from support.workflow import REPO

sys.path.insert(0, str(REPO / "scripts"))
from environment_yml import pins, render  # noqa: E402


def test_environment_yml_is_generated_from_requirements():
    assert (REPO / "environment.yml").read_text() == render(), "run: python scripts/environment_yml.py"


def test_environment_pins_equal_requirements_and_need_no_relative_paths():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pip == pins(REPO / "requirements.txt") and "torch==2.13.0" in pip
    assert not [p for p in pip if p.startswith(("-r", "-e", ".", "/"))]
