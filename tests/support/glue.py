"""GLUE task files for tests: small cuts of the real files in ../shared/data/glue (where present),
and generated rows in the layout of the tasks that are not on disk (MNLI, QNLI, QQP)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from support.workflow import REPO

SHARED = Path(os.environ.get("BERTFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
ON_DISK = {"cola": "CoLA", "mrpc": "MRPC", "rte": "RTE", "stsb": "STS-B", "wnli": "WNLI"}
WORDS = "the a cat dog man woman sees likes park river red big small walks runs near".split()


def cut_shared(task: str, root: Path, rows: int = 40) -> dict[str, str]:
    """`rows` lines spread over each of the task's real train/dev files (the header kept, so MRPC's
    BOM too), written to root/<task>; skips the test when the shared folder is absent."""
    folder = SHARED / "glue" / ON_DISK[task] if task != "sst2" else SHARED / "sst2"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent (the shared real-data folder beside the clone; or set BERTFLOW_SHARED_DATA)")
    files = {}
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
        lines = (folder / name).read_bytes().split(b"\n")
        header = [] if task == "cola" else lines[:1]
        body = [line for line in lines[len(header):] if line]
        step = max(1, len(body) // rows)
        out = root / task / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"\n".join(header + body[::step][:rows]) + b"\n")
        files[split] = str(out)
    return files


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) + " ."


def generated_rows(task: str, n: int, seed: int, dev: bool = False) -> str:
    """TSV text of `n` rows in the task's GLUE layout (MNLI's dev files have five annotator labels)."""
    rng = random.Random(seed)
    if task == "mnli":
        labels = ("entailment", "neutral", "contradiction")
        annotators = [f"label{i}" for i in range(1, 6 if dev else 2)]
        header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                  "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", *annotators, "gold_label"]
        rows = []
        for i in range(n):
            a, b, gold = _sentence(rng), _sentence(rng), rng.choice(labels)
            rows.append([str(i), str(i), f"{i}e", "fiction", f"( {a} )", f"( {b} )", f"(ROOT {a})", f"(ROOT {b})",
                         a, b, *[gold] * len(annotators), gold])
    elif task == "qnli":
        header = ["index", "question", "sentence", "label"]
        rows = [[str(i), _sentence(rng).replace(" .", " ?"), _sentence(rng), rng.choice(("entailment", "not_entailment"))]
                for i in range(n)]
    elif task == "qqp":
        header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
        rows = [[str(i), str(2 * i), str(2 * i + 1), _sentence(rng), _sentence(rng), rng.choice("01")] for i in range(n)]
    else:
        raise ValueError(task)
    return "\n".join("\t".join(row) for row in [header, *rows]) + "\n"


def write_generated(task: str, root: Path, n: int = 40) -> dict[str, str]:
    """Generated train and dev files of MNLI (both dev sets), QNLI or QQP in root/<task>."""
    folder = root / task
    folder.mkdir(parents=True, exist_ok=True)
    names = {"train": "train.tsv"}
    names.update({"validation": "dev_matched.tsv", "validation_mismatched": "dev_mismatched.tsv"} if task == "mnli"
                 else {"validation": "dev.tsv"})
    files = {}
    for i, (split, name) in enumerate(names.items()):
        (folder / name).write_text(generated_rows(task, n, seed=i, dev=split != "train"), encoding="utf-8")
        files[split] = str(folder / name)
    return files
