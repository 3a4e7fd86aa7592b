"""Bad input and faults: each case ends in a clear, early error that names the key or file.

Most cases are dry runs (`snakemake -n`, no job runs) or unit tests of bertflow.checks.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from bertflow import checks
from bertflow.errors import ConfigError, DataError, PipelineError, ResourceError
from bertflow.stage import OFFLINE_ENV, QUIET_ENV, failure_cause, stage
from bertflow.task_data import read_glue_tsv, read_squad_json
from bertflow.tasks import GLUE_TASKS

from support.workflow import REPO, TINY_CONFIG, snakemake, write_config

SCHEMA = checks.load_schema(REPO / "config" / "config.schema.yaml")


def tiny_config(**sections) -> dict:
    """The tiny config, validated with the defaults filled in, with sections updated one level deep."""
    from snakemake.utils import validate

    config = yaml.safe_load(TINY_CONFIG.read_text())
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    validate(config, str(REPO / "config" / "config.schema.yaml"))
    return config


def problems_of(config: dict) -> str:
    with pytest.raises(ConfigError) as err:
        checks.check_config(config)
    return str(err.value)


def dry_run(tmp_path, *args, configfile=TINY_CONFIG):
    """A dry run in a fresh folder: (return code, everything Snakemake printed)."""
    result = snakemake(tmp_path / "run", "--dry-run", *args, configfile=configfile, check=False)
    return result.returncode, result.stdout + result.stderr


def model_folder(path, model_type="bert", tokenizer=True, **fields):
    """A model folder as far as the start-up checks read it: config.json (+ vocab.txt)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type, **fields}))
    if tokenizer:
        (path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    return path


# ----------------------------------------------------------------------------- config consistency


def test_the_tiny_config_passes_the_checks():
    checks.check_config(tiny_config())


@pytest.mark.parametrize("sections, expected", [
    ({"finetune": {"squad": {**tiny_config()["finetune"]["squad"], "max_length": 600}}},
     "finetune.squad.max_length 600 exceeds the pretrained model's max_position_embeddings 512"),
    ({"finetune": {"sst2": {**tiny_config()["finetune"]["sst2"], "max_length": 513}}},
     "finetune.sst2.max_length 513 exceeds"),
    ({"pretrain": {"seq_len": 1024}}, "pretrain.seq_len 1024 exceeds the model's max_position_embeddings 512"),
    ({"pretrain": {"model": {"hidden_size": 64, "num_attention_heads": 3, "intermediate_size": 128}}},
     "hidden_size 64 is not divisible by num_attention_heads 3"),
    ({"finetune": {"squad": {**tiny_config()["finetune"]["squad"], "doc_stride": 96}}},
     "finetune.squad.doc_stride 96 must be less than max_length 96"),
    ({"pretrain": {"preset": None, "model": {"hidden_size": 64}}},
     "without a preset these fields are required"),
    ({"tokenizer": {"special_tokens": ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]}},
     "tokenizer.special_tokens: missing BERT tokens ['[MASK]']"),
])
def test_inconsistent_settings_are_named(sections, expected):
    assert expected in problems_of(tiny_config(**sections))


def test_an_empty_benchmark_sweep_is_named():
    config = tiny_config(benchmark={"enabled": True, "fixed_seq_len": 600, "seq_lens": [600, 1024]})
    message = problems_of(config)
    assert "benchmark.fixed_seq_len 600 exceeds the pretrained model's max_position_embeddings 512" in message
    assert "benchmark.seq_lens [600, 1024] all exceed" in message
    checks.check_config(tiny_config(benchmark={"enabled": False, "fixed_seq_len": 600}))


def test_local_files_of_an_unused_source_are_warned_about(tmp_path):
    rc, out = dry_run(tmp_path, "--config", 'finetune={"sst2": {"local": {"train": "train.tsv"}}}')
    assert rc == 0
    assert ("config warning: finetune.sst2.local.train is set but finetune.sst2.source is 'generated': "
            "the file is not used") in out
    assert checks.unused_source_warnings(tiny_config()) == []


def test_positions_come_from_the_model_fields_and_every_problem_is_listed():
    config = tiny_config(pretrain={"model": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
                                             "max_position_embeddings": 16}})
    message = problems_of(config)
    assert "pretrain.seq_len 32 exceeds the model's max_position_embeddings 16" in message
    assert "finetune.sst2.max_length 24 exceeds" in message and "finetune.squad.max_length 96 exceeds" in message


def test_squad_max_length_above_positions_fails_before_any_job(tmp_path):
    config = write_config(tmp_path / "c.yaml", pretrain={"model": {"max_position_embeddings": 64}})
    rc, out = dry_run(tmp_path, configfile=config)
    assert rc != 0
    assert "finetune.squad.max_length 96 exceeds the pretrained model's max_position_embeddings 64" in out
    assert f"config read from {config}" in out  # which file to fix
    assert not (tmp_path / "run" / "results").exists()


def test_cuda_without_a_gpu_fails_before_the_first_job(tmp_path):
    if subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                      capture_output=True, text=True).stdout.strip() == "True":
        pytest.skip("a GPU is visible here")
    config = write_config(tmp_path / "c.yaml", device="cuda")
    result = snakemake(tmp_path / "run", configfile=config, check=False)  # a real run: onstart is not dry
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config device: 'cuda' but no GPU is visible here" in out
    assert not (tmp_path / "run" / "results").exists()  # not even the corpus stage ran
    corpus_only = snakemake(tmp_path / "run", "results/corpus/stats.json", configfile=config, check=False)
    assert corpus_only.returncode == 0, "CPU-only stages (e.g. on a login node) must not need the GPU"


def test_cuda_is_not_checked_on_the_submit_host_of_a_cluster(tmp_path):
    """With `--executor slurm` the login node may have no GPU: the workflow goes on to submit
    (here to stand-in SLURM commands that refuse every job) instead of failing at onstart."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "sacct", "squeue", "sinfo", "scontrol"):
        (bin_dir / tool).write_text("#!/bin/sh\necho 'stand-in: no cluster here' >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    config = write_config(tmp_path / "c.yaml", device="cuda")
    result = snakemake(tmp_path / "run", "--executor", "slurm", "--jobs", "1", "--slurm-no-account",
                       "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
                       "results/corpus/stats.json", configfile=config, check=False,
                       env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "no GPU is visible" not in out
    assert "Error in rule prepare_corpus" in out  # it got as far as submitting the first job


def test_check_device_passes_cpu_and_auto_without_asking_torch(monkeypatch):
    monkeypatch.setattr(checks.subprocess, "run", lambda *a, **k: pytest.fail("torch was asked"))
    checks.check_device("cpu")
    checks.check_device("auto")


def test_cuda_check_reports_what_torch_said(monkeypatch):
    monkeypatch.setattr(checks.subprocess, "run",
                        lambda *a, **k: SimpleNamespace(stdout="False\n", stderr=""))
    with pytest.raises(ResourceError, match="torch.cuda.is_available\\(\\) is False"):
        checks.check_device("cuda")


# ----------------------------------------------------------------------------- baselines that are not encoders


def test_local_gpt2_baseline_is_rejected_when_the_workflow_starts(tmp_path):
    gpt2 = model_folder(tmp_path / "gpt2", model_type="gpt2", n_positions=1024)
    config = write_config(tmp_path / "c.yaml", finetune={"baselines": {"gpt": str(gpt2)}})
    rc, out = dry_run(tmp_path, configfile=config)
    assert rc != 0
    assert "finetune.baselines.gpt:" in out and "has model_type 'gpt2'" in out
    assert "a decoder-only model; fine-tuning takes an encoder with an AutoModelForSequenceClassification" in out


@pytest.mark.parametrize("folder_kwargs, expected", [
    ({"tokenizer": False}, "has no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt)"),
    ({"max_position_embeddings": 64}, "finetune.squad.max_length 96 exceeds the model's 64 positions"),
    ({"model_type": "gpt_neo"}, "has model_type 'gpt_neo', a decoder-only model"),
    ({"model_type": "t5"}, "has model_type 't5', an encoder-decoder model"),
    ({"model_type": "clip"}, "has model_type 'clip', which has no AutoModelForSequenceClassification class"),
])
def test_local_baseline_folder_problems(tmp_path, folder_kwargs, expected):
    folder = model_folder(tmp_path / "mine", **folder_kwargs)
    config = tiny_config(finetune={"baselines": {"mine": str(folder)}})
    message = problems_of(config)
    assert "finetune.baselines.mine:" in message and expected in message


def test_baseline_folder_without_config_or_with_broken_json(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in checks.model_folder_problems(str(tmp_path / "empty"), "k")[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert "config.json is not valid JSON" in checks.model_folder_problems(str(broken), "k")[0]


def test_finetune_job_rejects_a_decoder_only_folder_before_reading_weights(tmp_path):
    """A Hub baseline exists only after download_model: the finetune job checks it first."""
    from bertflow.finetune import load_task_model

    folder = model_folder(tmp_path / "downloaded", model_type="gpt2")  # no weights at all
    with pytest.raises(DataError, match="has model_type 'gpt2', a decoder-only model; fine-tuning takes an encoder"):
        load_task_model("classification", str(folder), labels=["negative", "positive"])


def test_finetune_job_checks_a_downloaded_model_s_positions(tmp_path):
    from bertflow.finetune import load_task_model

    folder = model_folder(tmp_path / "downloaded", max_position_embeddings=64)  # no weights at all
    with pytest.raises(DataError, match=r"max_length 96 \(question answering\) exceeds the model's 64 positions"):
        load_task_model("qa", str(folder), max_length=96)


def test_download_model_rejects_a_decoder_only_repo_before_the_weights(monkeypatch, tmp_path):
    import transformers
    from transformers import GPT2Config

    from bertflow.models import download_model

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda *a, **k: GPT2Config())
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: pytest.fail("downloaded more than config.json"))
    with pytest.raises(ConfigError, match="openai-community/gpt2 has model_type 'gpt2', a decoder-only model"):
        download_model("openai-community/gpt2", str(tmp_path / "out"))


# ----------------------------------------------------------------------------- baseline names


@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "", "Pretrained", "pretrained", "-x"])
def test_unsafe_baseline_names_are_rejected_by_the_schema(tmp_path, name):
    config = write_config(tmp_path / "c.yaml", finetune={"baselines": {name: "google/bert_uncased_L-2_H-128_A-2"}})
    rc, out = dry_run(tmp_path, configfile=config)
    assert rc != 0
    assert f"finetune.baselines: {name!r} does not match" in out
    assert "A name becomes a folder" in out  # the schema's description says what is allowed


def test_baseline_names_must_not_collide():
    config = tiny_config(finetune={"baselines": {"bert": "a/b", "BERT": "c/d"}})
    assert "names 'bert' and 'BERT' differ only in case" in problems_of(config)
    config = tiny_config(finetune={"baselines": {"pretrained-sst2": "a/b"}},
                         benchmark={"enabled": True, "include_finetuned": True})
    assert "finetune.baselines.pretrained-sst2: the name is also the inference benchmark's label" in problems_of(config)


# ----------------------------------------------------------------------------- failure lines


def test_foreign_exception_ends_the_log_with_its_type_and_message(tmp_path, monkeypatch):
    # stage() sets the offline variables in this process: undo them after the test, or every later
    # test's Snakemake (the loopback Hub upload) would inherit HF_HUB_OFFLINE.
    for key in OFFLINE_ENV:
        monkeypatch.setenv(key, "1")
    smk = SimpleNamespace(log=[str(tmp_path / "x.log")], rule="finetune", threads=None)
    with pytest.raises(RuntimeError):
        with stage(smk):
            raise RuntimeError("The size of tensor a (96) must match\nthe size of tensor b (64)")
    logging.shutdown()
    last = (tmp_path / "x.log").read_text().strip().splitlines()[-1]
    assert last.endswith("rule finetune failed: RuntimeError: The size of tensor a (96) must match "
                         "the size of tensor b (64)")


def test_stage_logs_are_plain_text(tmp_path, monkeypatch):
    for key in (*OFFLINE_ENV, *QUIET_ENV):  # stage() sets them in this process: undo after the test
        monkeypatch.setenv(key, "1")
    smk = SimpleNamespace(log=[str(tmp_path / "x.log")], rule="finetune", threads=None)
    with stage(smk):
        print("\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: model")
        sys.stderr.write("Loading weights:  50%\rLoading weights: 100%\n")
    logging.shutdown()
    text = (tmp_path / "x.log").read_text()
    assert "BertForSequenceClassification LOAD REPORT from: model" in text
    assert "\x1b" not in text and "\r" not in text
    assert "Loading weights: 100%" in text.splitlines()


def test_stage_gives_back_the_logging_it_replaced(tmp_path, monkeypatch):
    for key in (*OFFLINE_ENV, *QUIET_ENV):
        monkeypatch.setenv(key, "1")
    before = logging.root.handlers[:]
    smk = SimpleNamespace(log=[str(tmp_path / "x.log")], rule="finetune", threads=None)
    with stage(smk):
        assert logging.root.handlers != before
    assert logging.root.handlers == before, "no root handler is left writing to the closed log"
    logging.getLogger("bertflow").warning("after the stage")  # a closed stream would print 'Logging error'
    assert "after the stage" not in (tmp_path / "x.log").read_text()


def test_failure_cause_keeps_our_messages_as_they_are():
    assert failure_cause(DataError("x.tsv, line 3: bad")) == "x.tsv, line 3: bad"
    assert failure_cause(AttributeError("'DynamicCache' object has no attribute 'float'")) == \
        "AttributeError: 'DynamicCache' object has no attribute 'float'"
    assert failure_cause(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert len(failure_cause(ValueError("x" * 5000))) == 1000


def test_sst2_row_with_an_extra_tab_reports_the_column_count(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text("sentence\tlabel\na fine film\t1\na\tfilm with a tab\t0\n")
    with pytest.raises(DataError, match=r"train.tsv, line 3: expected 2 tab-separated columns, got 3"):
        read_glue_tsv(str(tsv), GLUE_TASKS["sst2"])


@pytest.mark.parametrize("text, expected", [
    ("seed: 3\npretrain:\n  epochs: [5\n", "YAML syntax error at line 4"),
    ("seed: 3\n\tdevice: cpu\n", "YAML syntax error at line 2"),
    ("", "empty (no keys)"),
    ("# only a comment\n", "empty (no keys)"),
    ("- seed\n", "top level is a list"),
])
def test_config_file_problems_name_file_and_line(tmp_path, text, expected):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    assert checks.config_file_problem(str(path)).startswith(f"{path}: {expected}")
    result = subprocess.run([sys.executable, "-m", "bertflow.checks", str(TINY_CONFIG), str(path)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 1 and f"{path}: {expected}" in result.stderr and str(TINY_CONFIG) not in result.stderr


def test_a_good_config_file_has_no_problem():
    assert checks.config_file_problem(str(TINY_CONFIG)) is None


def yaml_file(path, values: dict):
    path.write_text(yaml.safe_dump(values))
    return path


def run_checks(*files):
    return subprocess.run([sys.executable, "-m", "bertflow.checks", *map(str, files)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def test_checks_command_lists_every_schema_problem_of_the_merged_config(tmp_path):
    bad = yaml_file(tmp_path / "bad.yaml", {"pretrain": {"epochs": "three"}, "finetune": {"seeds": "1"}})
    result = run_checks(TINY_CONFIG, bad)
    assert result.returncode == 1, result.stdout
    assert "pretrain.epochs: 'three' is not of type 'integer'" in result.stderr
    assert "finetune.seeds: '1' is not of type 'array'" in result.stderr


def test_checks_command_runs_the_cross_key_checks_on_the_files_in_order(tmp_path):
    overlap = yaml_file(tmp_path / "overlap.yaml", {"finetune": {"squad": {"max_length": 64, "doc_stride": 64}}})
    result = run_checks(TINY_CONFIG, overlap)
    assert result.returncode == 1 and "finetune.squad.doc_stride 64 must be less than max_length 64" in result.stderr
    fixed = yaml_file(tmp_path / "fixed.yaml", {"finetune": {"squad": {"doc_stride": 32}}})
    result = run_checks(TINY_CONFIG, overlap, fixed)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "passes the start-up checks" in result.stdout


# ----------------------------------------------------------------------------- --config overrides


def test_override_strings_take_the_schema_types():
    config = {"seed": 3, "pretrain": {"epochs": "5", "learning_rate": "1e-3", "preset": "null", "seed": "7",
                                      "compile": "false", "model": {"hidden_size": "64"}},
              "finetune": {"seeds": ["1", "2"], "baselines": {"b": "123"},
                           "sst2": {"epochs": "2", "group_by_length": "true", "max_length": "48"}},
              "upload": {"repo_id": "a/1", "branch": "2024"}}
    overrides = copy.deepcopy(config)
    checks.coerce_overrides(config, overrides, SCHEMA)
    assert config["pretrain"] == {"epochs": 5, "learning_rate": 1e-3, "preset": None, "seed": 7, "compile": False,
                                  "model": {"hidden_size": 64}}
    assert config["finetune"] == {"seeds": [1, 2], "baselines": {"b": "123"},  # strings stay where strings fit
                                  "sst2": {"epochs": 2, "group_by_length": True, "max_length": 48}}  # $defs keys too
    assert config["upload"] == {"repo_id": "a/1", "branch": "2024"}


def test_integral_floats_become_ints_where_the_schema_asks_for_an_integer():
    config = {"pretrain": {"epochs": 3.0, "learning_rate": 1.0, "max_steps": 10.0, "warmup_ratio": 0.0},
              "finetune": {"seeds": [1.0, 2]}, "benchmark": {"seq_lens": [32.0]}}
    checks.integral_floats_to_int(config, SCHEMA)
    assert config == {"pretrain": {"epochs": 3, "learning_rate": 1.0, "max_steps": 10, "warmup_ratio": 0.0},
                      "finetune": {"seeds": [1, 2]}, "benchmark": {"seq_lens": [32]}}
    assert type(config["pretrain"]["epochs"]) is int and type(config["pretrain"]["learning_rate"]) is float


def test_only_overridden_keys_are_coerced():
    config = {"pretrain": {"epochs": "5", "batch_size": "8"}}
    checks.coerce_overrides(config, {"pretrain": {"batch_size": "8"}}, SCHEMA)
    assert config == {"pretrain": {"epochs": "5", "batch_size": 8}}  # a quoted YAML value is the user's


def test_unparseable_override_stays_a_string_for_the_schema_to_name():
    config = {"pretrain": {"epochs": "five"}}
    checks.coerce_overrides(config, copy.deepcopy(config), SCHEMA)
    assert checks.schema_problems(config, SCHEMA) == [
        "pretrain.epochs: 'five' is not of type 'integer'"]


@pytest.mark.parametrize("overrides", [  # docs/workflow.md's examples first
    ["seed=3", "device=cpu"],
    ['pretrain={"epochs": 5, "learning_rate": 1e-3}'],
    ["pretrain={preset: mini, max_steps: null}"],
    ['finetune={"seeds": [1, 2, 3], "squad": {"epochs": 2}}'],
    ['pretrain={"epochs": 5}'],
    ["pretrain={'epochs': 5, 'compile': false}"],
    ['benchmark={"enabled": false}'],
])
def test_override_forms_users_type_are_accepted(tmp_path, overrides):
    rc, out = dry_run(tmp_path, "--config", *overrides)
    assert rc == 0, out


def test_nested_override_merges_with_the_config_file(tmp_path):
    """Only the given key changes: tiny.yaml's seq_len 32 and hidden_size 64 stay (the error proves it)."""
    rc, out = dry_run(tmp_path, "--config", 'pretrain={"model": {"max_position_embeddings": 16}}')
    assert rc != 0
    assert "pretrain.seq_len 32 exceeds the model's max_position_embeddings 16" in out
    assert "hidden_size" not in out  # the preset + tiny.yaml's model fields are still complete
    assert "--config ['pretrain']" in out


def test_nested_seed_override_plans_one_run_per_seed(tmp_path):
    rc, out = dry_run(tmp_path, "--config", 'finetune={"seeds": [1, 2, 3]}')
    assert rc == 0, out
    runs = set(re.findall(r"finetune/(\w+)/(\w+)/seed3/metrics.json", out))
    assert runs == {("sst2", "pretrained"), ("squad", "pretrained")}  # the new seed, typed as a number


# ----------------------------------------------------------------------------- other inputs


def test_every_schema_violation_is_listed_with_its_key(tmp_path):
    config = write_config(tmp_path / "c.yaml", seed=-1,
                          pretrain={"preset": "huge", "epoch": 3},
                          finetune={"sst2": {"epochs": "three"}, "squad": {"batch_size": 0}})
    rc, out = dry_run(tmp_path, configfile=config)
    assert rc != 0
    for expected in ("finetune.sst2.epochs: 'three' is not of type 'integer' (Training epochs",
                     "finetune.squad.batch_size: 0 is less than the minimum of 1",
                     "pretrain: Additional properties are not allowed ('epoch' was unexpected)",
                     "pretrain.preset: 'huge' is not one of ['tiny', 'mini', 'small', 'medium', 'base', None]",
                     "seed: -1 is less than the minimum of 0"):
        assert expected in out, out


@pytest.mark.parametrize("section, value, expected", [
    ("pretrain", {"max_grad_norm": 0}, "pretrain.max_grad_norm: 0 is less than or equal to the minimum of 0"),
    ("pretrain", {"learning_rate": -1.0}, "pretrain.learning_rate: -1.0 is less than or equal to the minimum of 0"),
    ("finetune", {"seeds": []}, "finetune.seeds: [] should be non-empty"),
    ("finetune", {"seeds": [1, 1]}, "finetune.seeds: [1, 1] has non-unique elements"),
    ("results_dir", "", "results_dir: '' should be non-empty"),
    ("finetune", {"seeds": 1}, "finetune.seeds: 1 is not of type 'array'"),
    ("corpus", {"local": {"train": "a.txt"}}, "corpus.local.train: 'a.txt' is not of type 'array'"),
    ("device", "gpu", "device: 'gpu' is not one of ['auto', 'cpu', 'cuda']"),
    ("pretrain", None, "pretrain: None is not of type 'object'"),  # a section whose keys are all commented out
    ("tokenizer", {"vocab_size": 10}, "tokenizer.vocab_size: 10 is less than the minimum of 100"),
])
def test_zero_negative_and_empty_values(section, value, expected):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    if isinstance(value, dict):
        config[section].update(value)
    else:
        config[section] = value
    assert any(problem.startswith(expected) for problem in checks.schema_problems(config, SCHEMA))


def test_missing_local_task_file_fails_before_any_job(tmp_path):
    config = write_config(tmp_path / "c.yaml", finetune={
        "squad": {"source": "local", "local": {"train": str(tmp_path / "no_such.json")}}})
    rc, out = dry_run(tmp_path, configfile=config)
    assert rc != 0 and "config finetune.squad.local.train:" in out and "no_such.json' matches no file" in out


def test_empty_local_task_file_or_folder_fails_before_any_job(tmp_path):
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "folder.tsv").mkdir()
    config = write_config(tmp_path / "c.yaml", finetune={
        "squad": {"source": "local", "local": {"train": str(tmp_path / "empty.json")}},
        "sst2": {"source": "local", "local": {"train": str(tmp_path / "folder.tsv"),
                                              "validation": str(tmp_path / "folder.tsv")}}})
    rc, out = dry_run(tmp_path, configfile=config)
    assert rc != 0
    assert f"finetune.squad.local.train: '{tmp_path / 'empty.json'}' is empty" in out
    assert f"finetune.sst2.local.train: '{tmp_path / 'folder.tsv'}' is a folder; give the file" in out


SQUAD_WITHOUT_QUESTIONS = {"{}": "not SQuAD JSON (expected an object with a 'data' list)",
                           '{"data": []}': "no questions (empty split)",
                           "[": "SQuAD file is not valid JSON: Expecting value at line 1, column 2"}


def test_corpus_folder_or_empty_files_are_named(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "empty.txt").write_text("")
    config = tiny_config(corpus={"source": "local", "local": {"train": [str(tmp_path / "empty.txt")],
                                                               "validation": [str(tmp_path / "texts")]}})
    message = problems_of(config)
    assert f"corpus.local.validation: '{tmp_path / 'texts'}' matches folder(s)" in message
    assert f"give files, e.g. '{tmp_path / 'texts'}/*.txt'" in message
    assert f"corpus.local.train: every matched file is empty ({tmp_path / 'empty.txt'})" in message


@pytest.mark.parametrize("text", SQUAD_WITHOUT_QUESTIONS)
def test_squad_json_without_questions_is_named(tmp_path, text):
    path = tmp_path / "squad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"squad.json: {SQUAD_WITHOUT_QUESTIONS[text]}")):
        read_squad_json(str(path))


def test_errors_are_pipeline_errors():
    """The stage wrapper prints our errors as they are: keep every check inside that family."""
    assert issubclass(ConfigError, PipelineError) and issubclass(ResourceError, PipelineError)


# ----------------------------------------------------------------------------- damaged files name themselves


def test_a_latin1_sst2_file_names_the_line_and_byte(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_bytes("sentence\tlabel\na fine film\t1\nun film rat\u00e9\t0\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_glue_tsv(str(tsv), GLUE_TASKS["sst2"])
    assert str(err.value).startswith(f"{tsv}: data file is not UTF-8 text: byte 0xe9 at line 3, byte 12 "
                                     "(file offset 40) is invalid continuation byte")
    assert "iconv" in str(err.value)


def test_a_latin1_or_truncated_squad_file_is_named(tmp_path):
    squad = tmp_path / "validation.json"
    squad.write_bytes('{"data": [{"title": "caf\u00e9"'.encode("latin-1"))
    with pytest.raises(DataError, match=r"validation.json: SQuAD file is not UTF-8 text: byte 0xe9 at line 1"):
        read_squad_json(str(squad))
    squad.write_text('{"data": [{"title": "cafe",\n "paragraphs": [')
    with pytest.raises(DataError, match=r"validation.json: SQuAD file is not valid JSON: Expecting value at "
                                        r"line 2, column 17; the file is truncated or damaged"):
        read_squad_json(str(squad))


@pytest.fixture(scope="module")
def trained_tokenizer(tmp_path_factory):
    from support.pretrain import generated_tokenizer

    root = tmp_path_factory.mktemp("tokenizer")
    generated_tokenizer(root, sentences=300, validation_lines=20)
    return root / "tokenizer"


def test_a_truncated_tokenizer_json_is_named_by_every_reader(trained_tokenizer, tmp_path):
    import shutil

    from bertflow.blocks import load_backend
    from bertflow.tokenizer import load_tokenizer

    folder = tmp_path / "tokenizer"
    shutil.copytree(trained_tokenizer, folder)
    text = (folder / "tokenizer.json").read_text()
    (folder / "tokenizer.json").write_text(text[: len(text) // 2])
    for reader in (load_tokenizer, load_backend):
        with pytest.raises(DataError, match=re.escape(f"{folder / 'tokenizer.json'}: tokenizer file is not valid "
                                                      "JSON")) as err:
            reader(str(folder))
        assert "rerun the stage that wrote it (results/tokenizer: train_tokenizer)" in str(err.value)
    model = model_folder(tmp_path / "model")
    (model / "tokenizer.json").write_text("{")
    assert any("tokenizer.json: tokenizer file is not valid JSON" in problem
               for problem in checks.model_folder_problems(str(model), "k"))


def test_a_safetensors_file_cut_short_is_named_at_start(tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = model_folder(tmp_path / "mine")
    weights = folder / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(weights))
    assert checks.model_folder_problems(str(folder), "k") == []
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    problems = checks.model_folder_problems(str(folder), "k")
    assert problems == [f"k: {weights}: {len(data) // 2:,} bytes, but its header describes {len(data):,}; the "
                        "file is truncated: download or copy the model again"]
    weights.write_bytes(data[:4])
    assert "shorter than its own header" in checks.model_folder_problems(str(folder), "k")[0]
    config = tiny_config(finetune={"baselines": {"mine": str(folder)}})
    assert f"finetune.baselines.mine: {weights}" in problems_of(config)


@pytest.mark.parametrize("resident", [True, False])
def test_ids_beyond_the_vocabulary_name_the_block_file_and_position(tmp_path, resident):
    import numpy as np
    import torch

    from bertflow.block_loader import BlockLoader
    from bertflow.blocks import load_blocks
    from support.pretrain import random_block_folder

    folder = random_block_folder(tmp_path / "blocks", train_blocks=8, validation_blocks=2, seq_len=16,
                                 vocab_size=100)
    with open(folder / "train.bin", "r+b") as handle:  # block 5, position 3: id 4000
        handle.seek((5 * 16 + 3) * 2)
        handle.write(np.array([4000], dtype="<u2").tobytes())
    _, blocks = load_blocks(str(folder))
    expected = (f"{folder / 'train.bin'}: token id 4000 at block 5, position 3 (file offset 166) is beyond the "
                "vocabulary of 100 ids")
    with pytest.raises(DataError, match=re.escape(expected)):  # resident: at start; else in the batch's read
        loader = BlockLoader(blocks["train"], device=torch.device("cpu"), seed=0, batch_size=8, world=1, rank=0,
                             grad_accum=1, resident=resident, vocab_size=100)
        for step in range(loader.steps_per_epoch):
            loader.batch(0, step, 0)


def test_a_repeated_squad_question_id_is_named(tmp_path):
    """Predictions are keyed by id: a repeated one would leave a question unscored, silently."""
    def article(qid):
        return {"title": "t", "paragraphs": [{"context": "Ada wrote notes.", "qas": [
            {"id": qid, "question": "Who wrote notes?", "answers": [{"text": "Ada", "answer_start": 0}]}]}]}

    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"data": [article("q1"), article("q2"), article("q1")]}))
    with pytest.raises(DataError, match=re.escape(f"{path}: question id 'q1' is used twice (in article 0, again in "
                                                  "article 2)")):
        read_squad_json(str(path))
    path.write_text(json.dumps({"data": [article("q1"), article("q2"), article("q3")]}))
    assert read_squad_json(str(path))["data"][2]["paragraphs"][0]["qas"][0]["id"] == "q3"


# ----------------------------------------------------------------------------- a full disk


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: a disk that really fills up (needs the right to mount; skipped without)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()[-200:]}): run as root to test a full disk")
    yield mount_point
    gc.collect()  # a failed torch.save's writer holds its file open until collected
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def test_a_checkpoint_that_fills_the_disk_says_so_and_keeps_the_previous_one(tiny_disk):
    import torch

    from bertflow.checkpoints import save_checkpoint

    path = tiny_disk / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.zeros(1000)})
    with pytest.raises(ResourceError) as err:  # torch alone: "RuntimeError: ... unexpected pos 576 vs 534"
        save_checkpoint(path, {"step": 2, "w": torch.zeros(200_000)})
    message = str(err.value)
    assert message.startswith(f"{path}: the disk filled up while writing the checkpoint (No space left on device; ")
    assert re.search(r"; [\d.,]+ MiB free there now\); nothing half-written was kept", message) and "\n" not in message
    assert torch.load(path, weights_only=True)["step"] == 1 and not path.with_suffix(".tmp").exists()


def test_a_report_that_fills_the_disk_says_so_and_keeps_the_old_file(tiny_disk):
    from bertflow.io import write_json

    path = tiny_disk / "metrics.json"
    write_json(path, {"accuracy": 1})
    with pytest.raises(ResourceError, match=re.escape(f"{path}: the disk filled up while writing the file")):
        write_json(path, {"text": "x" * 400_000})
    assert json.loads(path.read_text()) == {"accuracy": 1} and [p.name for p in tiny_disk.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("raised, named", [
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1034304 vs 1034196"), "model"),
    (OSError(28, "No space left on device", "features/train.arrow"), "features/train.arrow"),
])
def test_a_stage_that_fills_the_disk_ends_its_log_with_the_path_and_free_space(tmp_path, monkeypatch, raised, named):
    for key in OFFLINE_ENV:
        monkeypatch.setenv(key, "1")
    smk = SimpleNamespace(log=[str(tmp_path / "x.log")], rule="finetune", threads=None, output=["model"])
    with pytest.raises(ResourceError):
        with stage(smk):
            raise raised
    logging.shutdown()
    last = (tmp_path / "x.log").read_text().strip().splitlines()[-1]
    assert f"rule finetune failed: {named}: the disk filled up while writing the outputs of rule finetune" in last
    assert "MiB free there now" in last


# ----------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_stage_outputs_follow_the_umask(tmp_path, monkeypatch, umask, file_mode, dir_mode):
    """As `cp` would create them: JSON (written through mkstemp) and safetensors (owner-only by
    themselves) included, so that a group sharing the project folder can read the results."""
    import torch
    from safetensors.torch import save_file

    from bertflow.io import write_json

    for key in OFFLINE_ENV:
        monkeypatch.setenv(key, "1")
    previous = os.umask(umask)
    try:
        report, model = tmp_path / "out" / "report.json", tmp_path / "out" / "model"
        smk = SimpleNamespace(log=[str(tmp_path / "x.log")], rule="pretrain", threads=None,
                              output=[str(report), str(model)])
        with stage(smk):
            write_json(report, {"perplexity": 3.0})
            (model / "sub").mkdir(parents=True)
            save_file({"w": torch.zeros(2)}, str(model / "sub" / "model.safetensors"))
    finally:
        os.umask(previous)
    written = (report, model, model / "sub", model / "sub" / "model.safetensors")
    modes = {p.name: p.stat().st_mode & 0o777 for p in written}
    assert modes == {"report.json": file_mode, "model": dir_mode, "sub": dir_mode, "model.safetensors": file_mode}


def test_every_result_of_a_run_is_readable_as_the_umask_allows(tiny_run):
    allowed = 0o666 & ~os.umask(os.umask(0o022))
    owner_only = [str(p.relative_to(tiny_run)) for p in (tiny_run / "results").rglob("*")
                  if p.is_file() and p.stat().st_mode & allowed != allowed]
    assert owner_only == []
