"""Dry runs of the fine-tuning rules: which jobs a config plans, without running any of them."""

from __future__ import annotations

import collections

import yaml

from support.workflow import REPO, snakemake, write_config


def planned_jobs(workdir, configfile) -> collections.Counter:
    """Rule -> number of jobs, from Snakemake's dry-run job-stats table."""
    out = snakemake(workdir, "--dry-run", "--quiet", "rules", configfile=configfile).stdout
    counts, in_table = collections.Counter(), False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and parts and parts[0] == "total":
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_seeds_baselines_and_sources_plan_the_expected_jobs(tmp_path):
    tsv = tmp_path / "sst2.tsv"
    tsv.write_text("sentence\tlabel\na fine film\t1\n")
    local_model = tmp_path / "my_bert"  # what the start-up checks read of a model folder
    local_model.mkdir()
    (local_model / "config.json").write_text('{"model_type": "bert"}')
    (local_model / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    config = write_config(tmp_path / "config.yaml", finetune={
        "seeds": [1, 2],
        "baselines": {"hub_bert": "google/bert_uncased_L-2_H-128_A-2", "folder_bert": str(local_model)},
        "sst2": {"source": "local", "local": {"train": str(tsv), "validation": str(tsv)}},
        "squad": {"source": "hub"},
    })
    jobs = planned_jobs(tmp_path / "run", config)
    assert jobs["download_model"] == 1  # only the Hub id; the local folder is used as it is
    assert jobs["download_task_data"] == 1  # SQuAD from the Hub; SST-2 reads the local TSV
    assert jobs["prepare_task_data"] == 2
    assert jobs["finetune"] == 2 * 3 * 2  # tasks x (pretrained + 2 baselines) x seeds
    assert jobs["finetune_summary"] == 2 * 3


def test_real_data_config_is_valid(tmp_path):
    """config/real_finetune.yaml with its shared-data paths pointed at stand-in files."""
    real = yaml.safe_load((REPO / "config" / "real_finetune.yaml").read_text())
    for task, name in (("sst2", "train"), ("sst2", "validation"), ("squad", "train")):
        path = tmp_path / f"{task}_{name}"
        path.write_text("x")  # not empty: an empty data file fails when the workflow starts
        real["finetune"][task]["local"][name] = str(path)
    assert real["finetune"]["squad"]["local"]["validation"] is None  # the prepare stage splits by article
    config = write_config(tmp_path / "config.yaml", finetune=real["finetune"])
    jobs = planned_jobs(tmp_path / "run", config)
    assert jobs["prepare_task_data"] == 2 and jobs["finetune"] == 2 and "download_task_data" not in jobs


def test_missing_local_baseline_folder_fails_before_any_job(tmp_path):
    config = write_config(tmp_path / "config.yaml", finetune={"baselines": {"mine": "./models/no_such_bert"}})
    result = snakemake(tmp_path / "run", "--dry-run", configfile=config, check=False)
    assert result.returncode != 0
    assert "finetune.baselines.mine: './models/no_such_bert' looks like a local folder" in result.stdout + result.stderr


def test_glue_config_plans_its_six_tasks(tmp_path):
    """config/glue.yaml with its shared-data paths pointed at stand-in files: one data preparation
    and one fine-tuning run per task, nothing downloaded."""
    glue = yaml.safe_load((REPO / "config" / "glue.yaml").read_text())
    assert glue["finetune"]["tasks"] == ["cola", "sst2", "mrpc", "stsb", "rte", "wnli"]
    for task in glue["finetune"]["tasks"]:
        for split in ("train", "validation"):
            path = tmp_path / f"{task}_{split}.tsv"
            path.write_text("x")
            glue["finetune"][task]["local"][split] = str(path)
    config = write_config(tmp_path / "config.yaml", finetune=glue["finetune"])
    jobs = planned_jobs(tmp_path / "run", config)
    assert jobs["prepare_task_data"] == 6 and jobs["finetune"] == 6 and jobs["finetune_summary"] == 6
    assert "download_task_data" not in jobs
