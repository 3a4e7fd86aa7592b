"""The docs, configs, code and tests speak of the software and its users, not of how it was made:
no tracker numbers ("issue 12", "#12") and no names of the work's process ("session", "stop 19")."""

from __future__ import annotations

import re

import pytest

from support.workflow import REPO

TREES = ("README.md", "Snakefile", "Makefile", "rules", "docs", "config", "profiles", "scripts", "src", "benchmarks",
         "tests")
THIS_FILE = "tests/test_wording.py"
# A link into another project's tracker (github.com/…/issues/1794, tokenizers#1794) is a fact about
# that project and allowed; our own process words are not.
PROCESS_WORDS = {
    "a tracker number": re.compile(r"\b(issue|pr|pull request|ticket)s? ?#?\d+", re.IGNORECASE),
    # (MRPC's own column names, `#1 ID` / `#1 String`, are data, not a tracker number)
    "a bare #number": re.compile(r"(?:^|[\s(\[])#\d+\b(?![;\w]| (?:ID|String)\b)"),
    "the tracker's issue": re.compile(r"\b(the|this|that|an|of|from|in) issue('s)?\b", re.IGNORECASE),
    "a numbered item": re.compile(r"\bitems? \d+(\.\d+)?\b", re.IGNORECASE),
    "a numbered stop": re.compile(r"\bstop \d+\b", re.IGNORECASE),
    "a work session": re.compile(r"\bsessions?\b(?<!scope=\"session)", re.IGNORECASE),
    "the work's roles": re.compile(r"\b(integrator|helper session|reviewer)s?\b|\bthe lead's\b", re.IGNORECASE),
    "the measuring machinery": re.compile(r"\bdevice calls?\b|\b(a|the) lent\b|\bwas lent\b", re.IGNORECASE),
    "a numbered section of a work list": re.compile(r"^\s*# -{10,} \d+(\.\d+)? "),
}


def text_files():
    for tree in TREES:
        root = REPO / tree
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            relative = path.relative_to(REPO).as_posix()
            if relative == THIS_FILE or ".egg-info" in relative or "__pycache__" in relative:
                continue
            try:
                yield relative, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary files (plots, weights) hold no prose


def process_words(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for name, pattern in PROCESS_WORDS.items():
            match = pattern.search(line)
            if match:
                found.append(f"line {number}: {name} {match.group(0).strip()!r}")
    return found


def test_no_file_speaks_of_how_the_project_was_made():
    found = [f"{path}, {hit}" for path, text in text_files() for hit in process_words(text)]
    assert not found, "process words (say what the software does instead):\n" + "\n".join(found)


@pytest.mark.parametrize("text", [
    "fixed in issue 12", "see #12 for why", "(issue 15.8)", "as item 5 asks", "stop 19 measured it",
    "the next GPU session", "the issue's aims", "left for the integrator", "while the lead's tests ran", "one device call each",
    "# ------------------------------------------- 14.4 --config overrides",
])
def test_process_words_are_found(text):
    assert process_words(text)


@pytest.mark.parametrize("text", [
    "huggingface/tokenizers#1794", "https://github.com/huggingface/tokenizers/issues/1794",
    "color: #222;", '@pytest.fixture(scope="session")', "the data set's 12 items", "SIGTERM stops the run",
    "# ------------------------------------------- --config overrides", "the leading [CLS] token",
    "header `Quality #1 ID #2 ID #1 String #2 String`",
])
def test_legitimate_words_pass(text):
    assert not process_words(text)
