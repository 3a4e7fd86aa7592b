"""Running the workflow from tests: the repository, the tiny config, the snakemake command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake_command(workdir: Path, *args: str, configfile: Path = TINY_CONFIG,
                      snakefile: Path = REPO / "Snakefile") -> list[str]:
    """The command line that runs the workflow in `workdir` with `configfile` (2 cores, 1 GPU slot)."""
    return [SNAKEMAKE, "--resources", "gpu=1", "-s", str(snakefile), "--directory", str(workdir),
            "--configfile", str(configfile), "--cores", "2", *args]


def snakemake(workdir: Path, *args: str, configfile: Path = TINY_CONFIG, snakefile: Path = REPO / "Snakefile",
              check: bool = True, env=None):
    """Run the workflow in `workdir` with `configfile`; returns the CompletedProcess."""
    cmd = snakemake_command(workdir, *args, configfile=configfile, snakefile=snakefile)
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def write_config(path: Path, **overrides) -> Path:
    """The tiny config with nested overrides, e.g. write_config(p, pretrain={"epochs": 3})."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for section, values in overrides.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path.write_text(yaml.safe_dump(config))
    return path
