"""End-to-end workflow on the tiny config: outputs, rerun semantics and bad input."""

from __future__ import annotations

import csv
import json
import shutil

from support.workflow import REPO, snakemake, write_config


def planned_rules(result) -> set[str]:
    """Rule names a dry run would execute, read from Snakemake's job-stats table."""
    rules, in_table = set(), False
    for line in result.stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if not set(parts[0]) <= {"-"}:
                rules.add(parts[0])
    return rules


def dry_run(workdir, configfile=None, snakefile_dir=None, **kwargs):
    if configfile is not None:
        kwargs["configfile"] = configfile
    if snakefile_dir is not None:
        kwargs["snakefile"] = snakefile_dir / "Snakefile"
    return planned_rules(snakemake(workdir, "--dry-run", "--quiet", "rules", **kwargs))


def test_pretraining_outputs_and_falling_perplexity(tiny_run):
    rows = list(csv.DictReader(open(tiny_run / "results/pretrain/perplexity.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "step", "train_loss", "eval_loss", "perplexity", "tokens_per_s", "elapsed_s",
                             "kind", "time"]
    assert [r["kind"] for r in rows] == ["epoch", "epoch"]
    perplexities = [float(r["perplexity"]) for r in rows]
    assert perplexities[1] < perplexities[0]
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)
    info = json.loads((tiny_run / "results/pretrain/train_info.json").read_text())
    assert info["steps"] == int(rows[-1]["step"]) and info["tokens_seen"] > 0
    assert info["environment"]["packages"]["transformers"].startswith("5.")
    assert (tiny_run / "results/pretrain/perplexity.png").stat().st_size > 1000
    model_dir = tiny_run / "results/pretrain/model"
    assert (model_dir / "model.safetensors").is_file()

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]


def test_stage_logs_are_plain_lines(tiny_run):
    """No progress bar (carriage returns) or colour code in any rule's log: stage() switches them off."""
    logs = sorted((tiny_run / "results/logs").rglob("*.log"))
    assert any(path.name == "pretrain.log" for path in logs) and len(logs) > 10
    for path in logs:
        text = path.read_text()
        assert "\r" not in text and "\x1b" not in text and "it/s]" not in text, path.name


def test_finetuning_metrics_per_task(tiny_run):
    sst2 = json.loads((tiny_run / "results/finetune/sst2/pretrained/seed1/metrics.json").read_text())
    assert sst2["accuracy"] > 60.0, "SST-2 accuracy should be clearly above chance on the generated data"
    assert sum(map(sum, sst2["confusion_matrix"])) == sst2["examples"] == 80
    assert len(sst2["epochs"]) == 3 and sst2["parameters"]["head_parameters_added"] > 0
    squad = json.loads((tiny_run / "results/finetune/squad/pretrained/seed1/metrics.json").read_text())
    assert 0.0 <= squad["exact_match"] <= squad["f1"] <= 100.0
    assert squad["questions"] == 6 * 6 == len(json.loads(
        (tiny_run / "results/finetune/squad/pretrained/seed1/predictions.json").read_text()))
    summary = json.loads((tiny_run / "results/finetune/sst2/pretrained/summary.json").read_text())
    assert summary["seeds"] == [1] and summary["mean"]["accuracy"] == sst2["accuracy"]
    assert (tiny_run / "results/finetune/squad/pretrained/seed1/model/model.safetensors").is_file()


def test_saved_tokenizers_carry_no_loader_flags(tiny_run):
    configs = sorted((tiny_run / "results").rglob("tokenizer_config.json"))
    assert len(configs) >= 4  # tokenizer, pretrained model, one fine-tuned model per task
    for path in configs:
        saved = json.loads(path.read_text())
        assert not {"is_local", "local_files_only"} & set(saved), f"{path} keeps loader flags"
        assert saved["mask_token"] == "[MASK]"


def test_inference_benchmark_covers_both_sweeps(tiny_run):
    rows = list(csv.DictReader(open(tiny_run / "results/benchmark/inference.csv")))
    assert {(r["sweep"], int(r["batch_size"]), int(r["seq_len"])) for r in rows} == {
        ("seq_len", 2, 8), ("seq_len", 2, 16), ("batch_size", 1, 16), ("batch_size", 2, 16)}
    assert all(float(r["latency_ms_median"]) > 0 for r in rows)
    assert (tiny_run / "results/benchmark/memory_vs_batch_size.png").is_file()


def test_complete_run_plans_nothing(tiny_run):
    assert dry_run(tiny_run) == set()


def test_pretraining_hyperparameter_replans_pretraining_not_tokenizer(tiny_run_copy, tmp_path):
    config = write_config(tmp_path / "c.yaml", pretrain={"learning_rate": 1.0e-3})
    planned = dry_run(tiny_run_copy, configfile=config)
    assert "pretrain" in planned and "all" in planned
    assert not planned & {"prepare_corpus", "train_tokenizer", "tokenize_corpus"}


def test_watch_only_pretraining_keys_replan_nothing(tiny_run_copy, tmp_path):
    config = write_config(tmp_path / "c.yaml", pretrain={"log_every_steps": 3, "tensorboard": False,
                                                         "checkpoint_every_steps": 7, "compile": True,
                                                         "compile_mode": "default"})
    assert dry_run(tiny_run_copy, configfile=config) == set()


def test_vocab_size_replans_tokenizer_and_everything_after(tiny_run_copy, tmp_path):
    config = write_config(tmp_path / "c.yaml", tokenizer={"vocab_size": 280})
    planned = dry_run(tiny_run_copy, configfile=config)
    assert {"train_tokenizer", "tokenize_corpus", "pretrain"} <= planned
    assert "prepare_corpus" not in planned


def test_seq_len_replans_the_blocks_and_pretraining_not_the_tokenizer(tiny_run_copy, tmp_path):
    config = write_config(tmp_path / "c.yaml", pretrain={"seq_len": 16})  # pretraining reads it from the blocks
    planned = dry_run(tiny_run_copy, configfile=config)
    assert {"tokenize_corpus", "pretrain"} <= planned
    assert not planned & {"prepare_corpus", "train_tokenizer"}


def copy_workflow(tmp_path):
    """A private copy of the workflow's code (Snakefile, rules, scripts, package, config)."""
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    for part in ("Snakefile", "rules", "scripts", "src", "config", "profiles", "docs"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, workflow / part)
    return workflow


def test_editing_a_stage_script_replans_it_and_what_follows(tiny_run_copy, tmp_path):
    workflow = copy_workflow(tmp_path)
    script = workflow / "scripts" / "tokenize_corpus.py"
    script.write_text(script.read_text() + "\n# an edit\n")
    planned = dry_run(tiny_run_copy, snakefile_dir=workflow)
    assert {"tokenize_corpus", "pretrain"} <= planned
    assert not planned & {"prepare_corpus", "train_tokenizer"}


def test_editing_a_package_module_replans_the_stages_that_import_it(tiny_run_copy, tmp_path):
    workflow = copy_workflow(tmp_path)
    module = workflow / "src" / "bertflow" / "pretrain.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    planned = dry_run(tiny_run_copy, snakefile_dir=workflow)
    assert {"pretrain", "finetune", "model_card", "summary_report"} <= planned
    assert not planned & {"prepare_corpus", "train_tokenizer", "prepare_task_data"}


def test_touching_code_without_changing_it_plans_nothing(tiny_run_copy, tmp_path):
    workflow = copy_workflow(tmp_path)
    for path in [*(workflow / "src" / "bertflow").rglob("*.py"), *(workflow / "scripts").glob("*.py")]:
        path.touch()
    assert dry_run(tiny_run_copy, snakefile_dir=workflow) == set()


def test_schema_error_names_the_key_before_any_work(tmp_path):
    config = write_config(tmp_path / "c.yaml", pretrain={"epochs": "three"})
    result = snakemake(tmp_path, "--dry-run", configfile=config, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "epochs" in output and "'three' is not of type 'integer'" in output
    assert not (tmp_path / "results").exists()


def test_missing_local_corpus_fails_at_start_naming_the_pattern(tmp_path):
    config = write_config(tmp_path / "c.yaml", corpus={"source": "local", "local": {"train": ["missing/*.txt"]}})
    result = snakemake(tmp_path, "--dry-run", configfile=config, check=False)
    assert result.returncode != 0
    assert "corpus.local.train: 'missing/*.txt' matches no file" in result.stdout + result.stderr


def test_empty_local_corpus_fails_naming_the_file(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    config = write_config(tmp_path / "c.yaml", corpus={"source": "local", "local": {"train": ["empty.txt"]}})
    result = snakemake(tmp_path, "results/corpus/train.txt", configfile=config, check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/prepare_corpus.log").read_text()
    assert "empty.txt: corpus file has no text lines" in log


def test_failed_stage_keeps_earlier_outputs(tiny_run_copy, tmp_path):
    """A batch larger than the training blocks fails pretraining: at start when the blocks already exist
    (as here), else in the stage, which counts them; tokenizer, blocks and the earlier pretraining survive."""
    before = (tiny_run_copy / "results/tokenizer/tokenizer.json").stat().st_mtime
    perplexity = tiny_run_copy / "results/pretrain/perplexity.csv"
    earlier_perplexity = perplexity.read_bytes()
    config = write_config(tmp_path / "c.yaml", pretrain={"batch_size": 100000})
    result = snakemake(tiny_run_copy, "results/pretrain/perplexity.csv", configfile=config, check=False)
    assert result.returncode != 0
    assert "fewer than one global batch" in result.stdout + result.stderr + (
        tiny_run_copy / "results/logs/pretrain.log").read_text()
    assert (tiny_run_copy / "results/tokenizer/tokenizer.json").stat().st_mtime == before
    assert (tiny_run_copy / "results/blocks/blocks_meta.json").is_file()
    assert perplexity.read_bytes() == earlier_perplexity, "a refused run changed the earlier pretraining"
