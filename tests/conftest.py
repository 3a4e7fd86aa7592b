"""Shared fixtures: one complete workflow run on the tiny config, reused by the end-to-end tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.workflow import snakemake

# Two cores are shared by everything: keep each torch process to one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A complete run of the default targets on the tiny config (shared, read-only for tests)."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    snakemake(workdir)
    return workdir


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the complete run, for tests that change config, code or files."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    return workdir


@pytest.fixture(scope="session")
def family_models(tmp_path_factory) -> dict[str, str]:
    """Family name -> folder of a tiny random-weight model of that family with its own tokenizer
    (tests/support/families.py), built once per test run."""
    from support.families import FAMILIES, family_model

    root = tmp_path_factory.mktemp("families")
    return {family: family_model(family, str(root)) for family in FAMILIES}
