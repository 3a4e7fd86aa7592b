"""Every command of README.md's shell blocks runs as written, in a fresh copy of the workflow:
each block as one bash script in which `snakemake` is a dry run (`-n`: the whole plan and the
start-up checks) and `make` is `make -n`, the rest as written; `--report` needs a finished run, so it runs on the shared tiny run."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.workflow import REPO, TINY_CONFIG

README = REPO / "README.md"
WORKFLOW_FILES = ("Snakefile", "rules", "config", "scripts", "src", "profiles", "Makefile", "requirements.txt",
                  "pyproject.toml", "environment.yml")
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_DATA_CONFIGS = ("config/wikitext2.yaml", "config/wikibooks.yaml", "config/gpu_wikibooks.yaml",
                     "config/real_finetune.yaml")


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", README.read_text(encoding="utf-8"), re.M | re.S)


def commands_of(block: str) -> list[str]:
    """The block's command lines, comments dropped."""
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [command for command in commands if command and not command.startswith("#")]


BLOCKS = [commands_of(block) for block in readme_blocks("bash")]


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    """The workflow's files linked into a fresh folder (no results, no .snakemake), with the README's
    `my.yaml` and a small corpus under corpus/, and the shared data beside it as in a checkout."""
    copy = tmp_path / "bertflow"
    copy.mkdir()
    for name in WORKFLOW_FILES:
        (copy / name).symlink_to(REPO / name)
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    (copy / "my.yaml").write_text(readme_blocks("yaml")[0])
    (copy / "corpus").mkdir()
    shutil.copy(REPO / "tests" / "configs" / "tiny.yaml", copy / "corpus" / "notes.txt")  # any text will do
    return copy


# The block runs as one bash script, so an `export` reaches the commands after it.
DRY_RUN_FORMS = """set -euo pipefail
snakemake() { command snakemake "$@" -n; }
make() { command make -n "$@"; }
"""


def run(command: list[str] | str, cwd: Path, shell: bool = False):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("HF_TOKEN", None)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, shell=shell, timeout=300,
                          executable="/bin/bash" if shell else None)


def test_the_readme_shows_the_commands_a_newcomer_needs():
    commands = [command for block in BLOCKS for command in block]
    assert "make run" in commands and "snakemake" in commands
    assert "snakemake --configfile my.yaml" in commands and "python -m bertflow.checks my.yaml" in commands
    assert len(README.read_text().splitlines()) <= 165


@pytest.mark.parametrize("block", [[c for c in block if "--report" not in c] for block in BLOCKS],
                         ids=lambda block: block[0])
def test_readme_block_runs_as_written(block, workflow_copy):
    """A block's commands in order in one copy (a later one may read what an earlier one wrote)."""
    if any(config in command for command in block for config in REAL_DATA_CONFIGS) and not SHARED_DATA.is_dir():
        pytest.skip(f"{block} reads the real data sets of {SHARED_DATA}, which are absent here")
    result = run(DRY_RUN_FORMS + "\n".join(block), workflow_copy, shell=True)
    assert result.returncode == 0, f"{block}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    dry_runs = sum(command.startswith("snakemake") for command in block)
    assert (result.stdout + result.stderr).count("This was a dry-run") == dry_runs


@pytest.mark.parametrize("command", [c for block in BLOCKS for c in block if "--report" in c])
def test_readme_report_command_runs_after_a_run(command, tiny_run_copy):
    """The tiny run stands for a finished default run: the command runs with the tiny config added."""
    words = shlex.split(command)
    result = run([str(Path(sys.executable).with_name("snakemake")), *words[1:], "--configfile", str(TINY_CONFIG),
                  "-s", str(REPO / "Snakefile")], tiny_run_copy)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tiny_run_copy / words[words.index("--report") + 1]).stat().st_size > 10_000


def markdown_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.is_file() and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", linked.read_text(encoding="utf-8"), re.M)
            if anchor not in map(markdown_anchor, headings):
                broken.append(target)
    return broken


def test_links_of_the_readme_and_the_docs_lead_somewhere():
    # docs/results/ also holds copies of a run's report.md, whose links lead into that run's results/.
    pages = [README, *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "results").rglob("README.md"))]
    broken = {str(page.relative_to(REPO)): links for page in pages if (links := broken_links(page))}
    assert not broken, broken
