"""Maintenance script, not a workflow stage: write environment.yml from requirements.txt (the single
source of the pins).

conda (and Snakemake, which copies an env file to .snakemake/conda/<hash>.yaml) resolves
`-r requirements.txt` and `-e .` relative to wherever the file is read from, so the env file lists
every pin itself. Run after changing requirements.txt:  python scripts/environment_yml.py
tests/test_environment.py fails while the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADER = """\
# Generated from requirements.txt by scripts/environment_yml.py; do not edit by hand.
# conda env create -f environment.yml && conda activate bertflow && pip install --no-deps -e .
# (the last step installs this package from the checkout; see README.md).
name: bertflow
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
"""


def pins(requirements: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in requirements.read_text().splitlines())
    return [line for line in lines if line]


def render(requirements: Path = REPO / "requirements.txt") -> str:
    return HEADER + "".join(f"      - {pin}\n" for pin in pins(requirements))


if __name__ == "__main__":
    target = REPO / "environment.yml"
    target.write_text(render())
    print(f"wrote {target} ({len(pins(REPO / 'requirements.txt'))} pins)", file=sys.stderr)
