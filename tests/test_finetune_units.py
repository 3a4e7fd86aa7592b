"""Unit tests of fine-tuning pieces: data validation, parameter accounting,
vocab reduction."""

from __future__ import annotations

import json

import pytest
import torch

from bertflow import task_data
from bertflow.errors import DataError
from bertflow.tasks import GLUE_TASKS
from bertflow.finetune import load_task_model, parameter_accounting

from bertflow.synthetic_tasks import generate_squad, generate_sst2
from bertflow.vocab_reduction import VocabReduction

from support.finetune import make_tiny_model

SST2_LABELS = ["negative", "positive"]


# ----------------------------------------------------------------------------- data validation


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def prepare_sst2_files(tmp_path, train_text, validation_text="sentence\tlabel\nfine\t0\n"):
    files = {"train": write(tmp_path / "train.tsv", train_text), "validation": write(tmp_path / "dev.tsv", validation_text)}
    task_data.prepare_text_task(GLUE_TASKS["sst2"], source="local", local_files=files,
                                out_train=str(tmp_path / "out_train.tsv"), out_validation=str(tmp_path / "out_dev.tsv"))
    return task_data.read_prepared_tsv(str(tmp_path / "out_train.tsv"))


def test_sst2_tsv_errors_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"train.tsv, line 1: missing column 'sentence' \(header: text, label\)"):
        prepare_sst2_files(tmp_path, "text\tlabel\nnice\t1\n")
    with pytest.raises(DataError, match=r"train.tsv, line 3, column 'label': label '2' is not one of the labels"):
        prepare_sst2_files(tmp_path, "sentence\tlabel\nnice\t1\nbad\t2\n")
    with pytest.raises(DataError, match=r"train.tsv, line 2: expected 2 tab-separated columns, got 1"):
        prepare_sst2_files(tmp_path, "sentence\tlabel\nno label here\n")
    with pytest.raises(DataError, match="empty split"):
        prepare_sst2_files(tmp_path, "sentence\tlabel\n")
    (example,) = prepare_sst2_files(tmp_path, "sentence\tlabel\nok  film \t1\n")
    assert (example.texts, example.label) == (("ok film",), "1")


def squad_doc(start):
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "alice lives in paris .",
            "qas": [{"id": "q1", "question": "where ?", "answers": [{"text": "paris", "answer_start": start}]}]}]}]}


def test_squad_answer_start_must_point_at_the_text(tmp_path):
    assert task_data.validate_squad(squad_doc(15), "x") == 1
    bad = write(tmp_path / "bad.json", json.dumps(squad_doc(3)))
    with pytest.raises(DataError, match=r"bad.json: question q1: answer_start 3 points at 'ce li'"):
        task_data.read_squad_json(bad)
    empty = write(tmp_path / "empty.json", json.dumps({"version": "1.1", "data": []}))
    with pytest.raises(DataError, match="empty split"):
        task_data.read_squad_json(empty)


def test_split_by_article_keeps_articles_whole():
    squad = generate_squad(10, seed=1)
    train, valid = task_data.split_articles(squad, 7, "file")
    assert len(train["data"]) == 7 and len(valid["data"]) == 3
    titles = lambda d: {a["title"] for a in d["data"]}  # noqa: E731
    assert titles(train).isdisjoint(titles(valid))
    with pytest.raises(DataError, match="train_articles must be between 1 and 9"):
        task_data.split_articles(squad, 10, "file")


def test_generated_tasks_are_valid_and_balanced():
    squad = generate_squad(25, seed=4)
    assert task_data.validate_squad(squad, "generated") == 25 * 6
    fresh = generate_squad(25, seed=4, world_seed=None)  # what the validation split uses
    assert task_data.validate_squad(fresh, "generated") == 25 * 6
    answers = lambda d: [qa["answers"][0]["text"] for a in d["data"] for p in a["paragraphs"] for qa in p["qas"]]  # noqa: E731
    same = sum(a == b for a, b in zip(answers(squad), answers(fresh)))
    assert same < 0.5 * len(answers(squad))  # the same names, mostly other facts: nothing to recall
    rows = generate_sst2(200, seed=2)
    assert sum(label for _, label in rows) == 100


# ----------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("model"))


def test_parameter_accounting_names_the_task_head(tiny_model_dir):
    model, _, loading_info = load_task_model("classification", tiny_model_dir, labels=SST2_LABELS)
    params = parameter_accounting(tiny_model_dir, model, loading_info)
    assert params["finetuned_parameters"] == sum(p.numel() for p in model.parameters())
    assert set(params["head_parameter_names"]) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                                   "classifier.weight", "classifier.bias"}
    hidden = model.config.hidden_size
    assert params["head_parameters_added"] == hidden * hidden + hidden + 2 * hidden + 2
    assert all(name.startswith("cls.") for name in params["dropped_parameter_names"])


def test_tokenizer_model_vocab_mismatch_is_rejected(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    bad = tmp_path / "bad"
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(bad)
    BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(bad)
    with pytest.raises(DataError, match=r"bad/tokenizer.json has \d+ tokens but the model's embedding has 50 rows"):
        load_task_model("classification", str(bad), labels=SST2_LABELS)


def test_vocab_reduction_keeps_outputs_and_restores_the_full_matrix(tiny_model_dir):
    model, tokenizer, _ = load_task_model("classification", tiny_model_dir, labels=SST2_LABELS)
    model.eval()
    ids = tokenizer(["alice lives in paris", "a dull film"], padding=True, return_tensors="pt")
    before = model(**ids).logits
    original = model.get_input_embeddings().weight.detach().clone()
    used = ids["input_ids"].unique().tolist()
    reduction = VocabReduction(model, used, tokenizer.all_special_ids)
    reduction.apply()
    assert model.get_input_embeddings().weight.shape[0] < original.shape[0]
    mapped = {**ids, "input_ids": reduction.map_ids(ids["input_ids"])}
    torch.testing.assert_close(model(**mapped).logits, before)
    stats = reduction.stats()
    assert 0 < stats["vocab_reduction_pct"] < 100 and 0 < stats["model_size_reduction_pct"] < 100
    with torch.no_grad():  # stand-in for training: change the kept rows
        model.get_input_embeddings().weight.add_(1.0)
    reduction.restore()
    restored = model.get_input_embeddings().weight.detach()
    assert restored.shape == original.shape
    kept = reduction.kept
    unused = torch.ones(original.shape[0], dtype=torch.bool)
    unused[kept] = False
    assert torch.equal(restored[unused], original[unused])
    torch.testing.assert_close(restored[kept], original[kept] + 1.0)


def test_vocab_reduction_keeps_the_pad_row_frozen(tiny_model_dir):
    model, tokenizer, _ = load_task_model("qa", tiny_model_dir)
    pad = tokenizer.pad_token_id
    reduction = VocabReduction(model, [7, 9], [])  # [PAD] kept even when not listed
    reduction.apply()
    embedding = model.get_input_embeddings()
    assert embedding.padding_idx == int(reduction.lookup[pad])
    reduction.restore()
    assert model.get_input_embeddings().padding_idx == pad


# ----------------------------------------------------------------------------- other model sources


def test_head_accounting_for_base_model_and_bin_checkpoints(tiny_model_dir, tmp_path):
    """Hub BERTs are often saved as BertModel (no `bert.` prefix) or as pytorch_model.bin only."""
    import shutil

    from safetensors.torch import load_file
    from transformers import AutoConfig, BertModel

    base = tmp_path / "base"
    BertModel(AutoConfig.from_pretrained(tiny_model_dir)).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{tiny_model_dir}/{name}", base)
    model, _, info = load_task_model("classification", str(base), labels=SST2_LABELS)
    params = parameter_accounting(str(base), model, info)
    assert params["head_parameter_names"] == ["classifier.bias", "classifier.weight"]  # the pooler was saved
    assert params["pretrained_parameters"] + params["head_parameters_added"] == params["finetuned_parameters"]

    binary = tmp_path / "bin"
    shutil.copytree(tiny_model_dir, binary)
    torch.save(load_file(binary / "model.safetensors"), binary / "pytorch_model.bin")
    (binary / "model.safetensors").unlink()
    model, _, info = load_task_model("classification", str(binary), labels=SST2_LABELS)
    from_bin = parameter_accounting(str(binary), model, info)
    model, _, info = load_task_model("classification", tiny_model_dir, labels=SST2_LABELS)
    assert from_bin == parameter_accounting(tiny_model_dir, model, info)


def test_model_folder_without_tokenizer_is_rejected(tiny_model_dir, tmp_path):
    import shutil

    shutil.copy(f"{tiny_model_dir}/config.json", tmp_path)
    with pytest.raises(DataError, match="no tokenizer files"):
        load_task_model("classification", str(tmp_path), labels=SST2_LABELS)


def test_hub_datasets_on_disk_are_validated(tmp_path):
    import datasets

    ctx = "alice lives in paris ."
    squad_rows = {"id": ["q1"], "title": ["t"], "context": [ctx], "question": ["where ?"],
                  "answers": [{"text": ["paris"], "answer_start": [15]}]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(squad_rows)}).save_to_disk(tmp_path / "squad")
    assert task_data.hub_squad_to_official(str(tmp_path / "squad"), "train")["data"][0]["paragraphs"] == [
        {"context": ctx, "qas": [{"id": "q1", "question": "where ?",
                                  "answers": [{"text": "paris", "answer_start": 15}]}]}]

    sst2 = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0]}),
        "test": datasets.Dataset.from_dict({"sentence": ["?"], "label": [-1]}),  # GLUE test: no labels
    })
    sst2.save_to_disk(tmp_path / "sst2")
    sst2_task = GLUE_TASKS["sst2"]
    rows = task_data.read_hub_task(str(tmp_path / "sst2"), "train", sst2_task)
    assert [(e.texts, e.label) for e in rows] == [(("good",), "1"), (("bad",), "0")]
    with pytest.raises(DataError, match=r"sst2 \(split test\), row 0: label -1 is not a class id 0-1"):
        task_data.read_hub_task(str(tmp_path / "sst2"), "test", sst2_task)
    (tmp_path / "not_saved").mkdir()
    with pytest.raises(DataError, match="not_saved: cannot load the saved dataset"):
        task_data.read_hub_task(str(tmp_path / "not_saved"), "train", sst2_task)
    with pytest.raises(DataError, match="split 'dev' not found"):
        task_data.read_hub_task(str(tmp_path / "sst2"), "dev", sst2_task)
