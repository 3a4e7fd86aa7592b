"""Air-gapped compute nodes: the whole tiny pipeline with HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1
and no reachable network, from Hub datasets that the download rules saved beforehand.

On a cluster the download rules (local rules) run first on the login node
(`snakemake --until download_corpus download_task_data`); here their outputs are written the way
those rules write them (`DatasetDict.save_to_disk`) from the generated data, since this machine
cannot reach the Hub. Every compute stage must then run from disk alone.
"""

from __future__ import annotations

import json

import pytest

from support.workflow import snakemake, write_config

from bertflow.synthetic import generate_corpus
from bertflow.synthetic_tasks import generate_sst2

AIR_GAPPED = {
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    # Any attempt to reach the network fails at once instead of hanging.
    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
}


def save_downloads(results):
    """What download_corpus and download_task_data(sst2) leave behind, with generated content."""
    import datasets

    lines = generate_corpus(2000, seed=3)  # documents, one per line
    cut = len(lines) * 9 // 10
    corpus = {"train": lines[:cut], "validation": lines[cut:]}
    datasets.DatasetDict({split: datasets.Dataset.from_dict({"text": text}) for split, text in corpus.items()}
                         ).save_to_disk(str(results / "downloads/corpus"))
    sst2 = {"train": generate_sst2(320, seed=21), "validation": generate_sst2(80, seed=22)}
    datasets.DatasetDict({
        split: datasets.Dataset.from_dict({"sentence": [s for s, _ in rows], "label": [label for _, label in rows],
                                           "idx": list(range(len(rows)))})
        for split, rows in sst2.items()
    }).save_to_disk(str(results / "downloads/sst2"))
    return len(corpus["train"])


@pytest.mark.slow
def test_full_pipeline_runs_offline_from_downloaded_hub_datasets(tmp_path):
    workdir = tmp_path / "run"
    train_lines = save_downloads(workdir / "results")
    config = write_config(
        tmp_path / "offline.yaml",
        corpus={"source": "hub", "hub": {"name": "wikitext", "config": "wikitext-2-raw-v1"}},
        pretrain={"epochs": 1},
        finetune={"seeds": [1], "sst2": {"source": "hub", "max_length": 24, "epochs": 2, "batch_size": 8,
                                         "learning_rate": 1.0e-3},
                  "squad": {"generated": {"train_articles": 12, "validation_articles": 4}, "max_length": 96,
                            "doc_stride": 32, "epochs": 1, "batch_size": 16}},
    )
    result = snakemake(workdir, configfile=config, env=AIR_GAPPED)
    ran = {line.split()[1].rstrip(":") for line in (result.stdout + result.stderr).splitlines()
           if line.startswith(("rule ", "localrule "))}
    assert not ran & {"download_corpus", "download_task_data", "download_model"}, ran
    assert {"prepare_corpus", "train_tokenizer", "tokenize_corpus", "pretrain", "finetune", "summary_report"} <= ran

    stats = json.loads((workdir / "results/corpus/stats.json").read_text())
    assert stats["source"] == "hub" and stats["train_lines"] == train_lines
    sst2 = json.loads((workdir / "results/finetune/sst2/pretrained/seed1/metrics.json").read_text())
    assert sst2["examples"] == 80
    assert (workdir / "results/report.md").is_file()
    receipt = json.loads((workdir / "results/upload/receipt.json").read_text())
    assert receipt  # upload disabled: a dry-run receipt, no network
