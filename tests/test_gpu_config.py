"""config/gpu_wikibooks.yaml, the one-GPU budgeted run, checked end to end on CPU with a tiny budget.

The config is used as written (its corpus glob, its SST-2 / SQuAD files under ../shared/data, its
time budget and schedule, 3 seeds); a second config file only shrinks what a CPU cannot do in CI
time: the model, the budget, the task data (a few KB cut from the real files, or made up when the
shared data is absent), the epochs and the benchmark grid.
"""

from __future__ import annotations

import csv
import json
import lzma
from pathlib import Path

import pytest
import yaml

from support.workflow import REPO, snakemake

SHARED = REPO.parent / "shared" / "data"
GPU_CONFIG = REPO / "config" / "gpu_wikibooks.yaml"


def _paragraphs(shard: Path, documents: int) -> list[str]:
    """The first `documents` documents of a wikibooks shard (blank-line separated), capped in size."""
    lines, seen = [], 0
    with lzma.open(shard, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                seen += 1
                if seen == documents:
                    break
            lines.append(line.rstrip("\n")[:2000])
    return lines


def _made_up_paragraphs(documents: int) -> list[str]:
    lines = []
    for doc in range(documents):
        lines += [f"Document {doc} tells of the river town number {doc} and its people.",
                  f"The town {doc} had a market, a school and a small harbour on the river.", ""]
    return lines


def write_wikibooks(root: Path) -> None:
    """Two xz shards in the corpus' format: one paragraph per line, blank line between documents."""
    folder = root / "wikibooks"
    folder.mkdir(parents=True)
    for index, name in enumerate(["enwiki-2015-00-of-08.txt.xz", "gutenberg-00-of-02.txt.xz"]):
        source = SHARED / "wikibooks" / name
        lines = _paragraphs(source, 40 if index == 0 else 1) if source.is_file() else _made_up_paragraphs(40)
        with lzma.open(folder / name, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def write_sst2(root: Path) -> None:
    folder = root / "sst2"
    folder.mkdir(parents=True)
    for name, rows in (("train.tsv", 240), ("dev.tsv", 60)):
        source = SHARED / "sst2" / name
        if source.is_file():
            text = source.read_text(encoding="utf-8").splitlines()[: rows + 1]
        else:
            text = ["sentence\tlabel"] + [f"{'a fine warm film' if i % 2 else 'a dull cold film'} {i}\t{i % 2}"
                                          for i in range(rows)]
        (folder / name).write_text("\n".join(text) + "\n", encoding="utf-8")


def write_squad(root: Path) -> None:
    """40 articles (the config trains on the first 32), one paragraph with two questions each."""
    folder = root / "squad"
    folder.mkdir(parents=True)
    source = SHARED / "squad" / "squad-v1.1-dev-part1.json"
    if source.is_file():
        articles = json.loads(source.read_text(encoding="utf-8"))["data"][:40]
        data = [{"title": a["title"], "paragraphs": [{**a["paragraphs"][0], "qas": a["paragraphs"][0]["qas"][:2]}]}
                for a in articles]
    else:
        data = [{"title": f"Town {i}", "paragraphs": [{"context": f"Town {i} lies on the river Aa.", "qas": [
            {"id": f"q{i}", "question": f"Where does town {i} lie?",
             "answers": [{"text": "on the river Aa", "answer_start": len(f"Town {i} lies ")}]}]}]}
                for i in range(40)]
    (folder / "squad-v1.1-dev-part1.json").write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")


CPU_SHRINK = {
    "device": "cpu",
    "corpus": {"validation_fraction": 0.2},  # 41 documents: 1% would hold out none
    "tokenizer": {"vocab_size": 2000},
    "pretrain": {"preset": "tiny", "batch_size": 16, "time_budget": 0.1, "eval_every_steps": 20,
                 "log_every_steps": 10, "checkpoint_every_steps": 0},
    "finetune": {"seeds": [1], "sst2": {"epochs": 1, "batch_size": 16},
                 "squad": {"epochs": 1, "max_length": 128, "doc_stride": 64, "batch_size": 8}},
    "benchmark": {"include_finetuned": False, "seq_lens": [16, 32], "batch_sizes": [1, 2], "fixed_batch": 2,
                  "fixed_seq_len": 16, "warmup": 1, "repeats": 2},
}


@pytest.mark.slow
def test_gpu_wikibooks_config_runs_end_to_end_on_cpu_with_a_tiny_budget(tmp_path):
    data = tmp_path / "shared" / "data"  # the config reads ../shared/data from the working directory
    for write in (write_wikibooks, write_sst2, write_squad):
        write(data)
    workdir = tmp_path / "run"
    workdir.mkdir()
    shrink = tmp_path / "cpu_shrink.yaml"
    shrink.write_text(yaml.safe_dump(CPU_SHRINK))

    snakemake(workdir, "--configfile", str(GPU_CONFIG), str(shrink), configfile=GPU_CONFIG)

    results = workdir / "results" / "gpu_wikibooks"
    info = json.loads((results / "pretrain" / "train_info.json").read_text())
    assert info["stopped_by"] == "time_budget"
    rows = list(csv.DictReader((results / "pretrain" / "perplexity.csv").open()))
    assert rows[-1]["kind"] == "end"
    for task, metric in (("sst2", "accuracy"), ("squad", "f1")):
        summary = json.loads((results / "finetune" / task / "pretrained" / "summary.json").read_text())
        assert metric in json.dumps(summary)
    report = (results / "report.md").read_text()
    assert "SST-2" in report and "SQuAD" in report
    card = (results / "card" / "README.md").read_text()
    assert "glue/sst2" in card and "squad" in card
