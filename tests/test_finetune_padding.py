"""Fine-tuning speed features keep results: dynamic padding, length-grouped batches, the feature
cache, padding-independent QA decoding; and what a run reports (labels, TensorBoard events)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from bertflow import finetune as ft
from bertflow.errors import ConfigError
from bertflow.io import read_json
from bertflow.qa import decode_answers

from support.finetune import generated_task_files, make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Dropout off: then dynamic padding changes nothing but float rounding (with dropout the masks'
    random stream depends on the batch width, so runs would differ by seed noise only)."""
    root = tmp_path_factory.mktemp("nodrop")
    folder = make_tiny_model(root, vocab_size=300, hidden=32)
    config = json.loads((root / "model" / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (root / "model" / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generated_task_files(tmp_path_factory.mktemp("data"))


def run(task, model_dir, data, out, **settings):
    ext = "tsv" if task == "sst2" else "json"
    base = {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "max_length": 64, "doc_stride": 16}
    return ft.finetune(task=task, model_dir=model_dir, train_file=str(data / f"train.{ext}"),
                       validation_file=str(data / f"validation.{ext}"), out_dir=str(out), seed=7, device="cpu",
                       settings={**base, **settings})


@pytest.mark.parametrize("task, metric", [("sst2", "accuracy"), ("squad", "exact_match")])
def test_dynamic_padding_gives_the_results_of_full_padding(task, metric, model_dir, data, tmp_path):
    full = run(task, model_dir, data, tmp_path / "full", dynamic_padding=False)
    dynamic = run(task, model_dir, data, tmp_path / "dynamic")
    for old, new in zip(full["epochs"], dynamic["epochs"]):
        assert new["train_loss"] == pytest.approx(old["train_loss"], rel=1e-3)
    assert dynamic[metric] == pytest.approx(full[metric], abs=1e-9)
    assert read_json(tmp_path / "dynamic" / "predictions.json") == read_json(tmp_path / "full" / "predictions.json")


@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_unpadded_encoder_trains_as_the_padded_forward(task, model_dir, data, tmp_path):
    """unpad (auto, the default, for BERT on CPU) skips the padding and, for SST-2, all but the [CLS] row in the last
    layer: with dropout off, the padded forward's losses and predictions (tests/test_unpadding.py
    compares logits and gradients; SQuAD's loss and answers leave padding out)."""
    padded = run(task, model_dir, data, tmp_path / "padded", unpad=False)
    unpadded = run(task, model_dir, data, tmp_path / "unpadded")
    assert unpadded["unpadded"] is True and padded["unpadded"] is False
    for old, new in zip(padded["epochs"], unpadded["epochs"]):
        assert new["train_loss"] == pytest.approx(old["train_loss"], rel=1e-4)
    assert read_json(tmp_path / "unpadded" / "predictions.json") == read_json(tmp_path / "padded" / "predictions.json")


def test_unpad_true_refuses_a_model_it_cannot_read_and_auto_takes_the_padded_forward(model_dir, data, tmp_path):
    chunked = tmp_path / "chunked"
    shutil.copytree(model_dir, chunked)
    config = json.loads((chunked / "config.json").read_text())
    (chunked / "config.json").write_text(json.dumps({**config, "chunk_size_feed_forward": 1}))
    with pytest.raises(ConfigError, match=r"finetune.sst2.unpad is true but this bert sets chunk_size_feed_forward"):
        run("sst2", str(chunked), data, tmp_path / "out", unpad=True)
    assert run("sst2", str(chunked), data, tmp_path / "auto", epochs=1)["unpadded"] is False


def test_unpad_auto_takes_the_padded_forward_on_cuda_and_says_why():
    from transformers import BertConfig, BertForSequenceClassification, DistilBertConfig, DistilBertForMaskedLM

    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))
    assert ft.unpad_decision("auto", bert, "cpu", "finetune.sst2")[0] is True
    unpadded, why = ft.unpad_decision("auto", bert, "cuda", "finetune.sst2")
    assert not unpadded and "CUDA" in why
    assert ft.unpad_decision(True, bert, "cuda", "finetune.sst2")[0] is True
    distilbert = DistilBertForMaskedLM(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    unpadded, why = ft.unpad_decision("auto", distilbert, "cpu", "finetune.squad")
    assert not unpadded and "not 'distilbert'" in why
    with pytest.raises(ConfigError, match="finetune.squad.unpad is true but the unpadded encoder serves model_type "
                                          "bert / roberta / xlm-roberta / electra"):
        ft.unpad_decision(True, distilbert, "cpu", "finetune.squad")


def test_squad_loss_leaves_padding_out():
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32)).eval()
    lengths = torch.tensor([6, 9, 4])
    mask = (torch.arange(9) < lengths[:, None]).long()
    batch = {"input_ids": torch.randint(5, 50, (3, 9)) * mask, "attention_mask": mask,
             "start_positions": torch.tensor([1, 3, 0]), "end_positions": torch.tensor([2, 5, 0])}
    wider = {k: torch.nn.functional.pad(v, (0, 7)) if v.dim() == 2 else v for k, v in batch.items()}
    loss = ft.Squad.training_loss(model, batch)
    assert ft.Squad.training_loss(model, wider).item() == pytest.approx(loss.item(), rel=1e-6)
    assert model(**wider).loss.item() != pytest.approx(loss.item(), rel=1e-3)  # transformers' head counts padding


def test_length_grouped_batches_cover_every_feature_with_less_padding(model_dir, data, tmp_path):
    lengths = torch.tensor([5, 9, 2, 7, 7, 3, 8, 1, 4, 6])
    order = ft.length_grouped_order(lengths, batch_size=2, generator=torch.Generator().manual_seed(0),
                                    megabatch_batches=2)
    assert sorted(order.tolist()) == list(range(10))
    for batch in order.split(2):  # rows of one mega-batch (2 x 2 rows) sorted by length, longest first
        assert lengths[batch].tolist() == sorted(lengths[batch].tolist(), reverse=True)

    lengths = torch.randint(3, 60, (800,), generator=torch.Generator().manual_seed(1))
    def padded_columns(order):
        return sum(int(lengths[batch].max()) * len(batch) for batch in order.split(16))
    shuffled = torch.randperm(800, generator=torch.Generator().manual_seed(2))
    grouped = ft.length_grouped_order(lengths, 16, torch.Generator().manual_seed(2))
    assert padded_columns(grouped) < 0.7 * padded_columns(shuffled)

    result = run("sst2", model_dir, data, tmp_path / "grouped", group_by_length=True)
    assert all(np.isfinite(e["train_loss"]) for e in result["epochs"])


def test_reduced_vocabulary_learns_what_the_full_matrix_learns(model_dir, data, tmp_path):
    """reduce_vocab (the default) trains only the rows the task's tokens use: the other rows take
    no part in the losses or predictions, so both runs match (dropout streams included)."""
    full = run("sst2", model_dir, data, tmp_path / "full", reduce_vocab=False)
    reduced = run("sst2", model_dir, data, tmp_path / "reduced")
    assert reduced["settings"]["reduce_vocab"] is True and full["settings"]["reduce_vocab"] is False  # the default
    assert reduced["vocab_reduction"]["vocab_kept"] < reduced["vocab_reduction"]["vocab_full"]
    for old, new in zip(full["epochs"], reduced["epochs"]):
        assert new["train_loss"] == pytest.approx(old["train_loss"], rel=1e-5)
    assert read_json(tmp_path / "reduced" / "predictions.json") == read_json(tmp_path / "full" / "predictions.json")


def test_padded_width_rounds_up_to_the_multiple_within_the_tensor():
    assert ft.padded_width(13, 64, 1) == 13
    assert ft.padded_width(13, 64, 8) == 16
    assert ft.padded_width(63, 64, 8) == 64


def test_features_are_built_once_per_tokenizer_data_and_settings(model_dir, data, tmp_path, monkeypatch):
    cache = tmp_path / "features"
    first = ft.finetune(task="squad", model_dir=model_dir, train_file=str(data / "train.json"),
                        validation_file=str(data / "validation.json"), out_dir=str(tmp_path / "a"), seed=1,
                        device="cpu", settings={"epochs": 1, "batch_size": 8, "max_length": 64, "doc_stride": 16},
                        features_cache=str(cache))
    assert len(list(cache.glob("squad-*.pt"))) == 1

    def no_rebuild(self):
        raise AssertionError("features rebuilt although cached")

    monkeypatch.setattr(ft.Squad, "build_features", no_rebuild)
    second = ft.finetune(task="squad", model_dir=model_dir, train_file=str(data / "train.json"),
                         validation_file=str(data / "validation.json"), out_dir=str(tmp_path / "b"), seed=2,
                         device="cpu", settings={"epochs": 1, "batch_size": 8, "max_length": 64, "doc_stride": 16,
                                                 "learning_rate": 3e-4},  # a training setting: same features
                         features_cache=str(cache))
    assert second["train_features"] == first["train_features"]
    with pytest.raises(AssertionError, match="rebuilt"):  # a feature setting: new features
        ft.finetune(task="squad", model_dir=model_dir, train_file=str(data / "train.json"),
                    validation_file=str(data / "validation.json"), out_dir=str(tmp_path / "c"), seed=2,
                    device="cpu", settings={"epochs": 1, "batch_size": 8, "max_length": 64, "doc_stride": 24},
                    features_cache=str(cache))


def test_qa_decoding_ignores_scores_outside_the_context():
    context = "alice lives in paris ."
    examples = [{"id": "q", "context": context, "answers": {"text": ["paris"], "answer_start": [15]}}]
    offsets = np.full((1, 8, 2), -1, dtype=np.int32)
    offsets[0, 3:8] = [(0, 5), (6, 11), (12, 14), (15, 20), (21, 22)]
    start, end = np.zeros((1, 8)), np.zeros((1, 8))
    start[0, :3] = end[0, :3] = 50.0  # question / special tokens: never an answer
    start[0, 6], end[0, 6] = 5.0, 5.0
    predictions = decode_answers(examples, [0], offsets, start, end, n_best=2, max_answer_length=5)
    assert predictions == {"q": "paris"}  # with n_best 2 the outside scores would have crowded it out


def test_sst2_model_names_its_labels_and_logs_tensorboard_events(model_dir, data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ft.finetune(task="sst2", model_dir=model_dir, train_file=str(data / "train.tsv"),
                validation_file=str(data / "validation.tsv"), out_dir=str(tmp_path / "run"), seed=1, device="cpu",
                settings={"epochs": 2, "batch_size": 16, "max_length": 32}, model_name="tiny", tensorboard=True)
    config = read_json(tmp_path / "run" / "model" / "config.json")
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"sst2/tiny/seed1/train/loss", "sst2/tiny/seed1/eval/accuracy"} <= tags
    losses = events.Scalars("sst2/tiny/seed1/train/loss")
    assert losses[-1].step == 2 * (96 // 16) and all(np.isfinite(e.value) for e in losses)
    accuracy = [e.value for e in events.Scalars("sst2/tiny/seed1/eval/accuracy")]
    assert len(accuracy) == 2 and accuracy[-1] == pytest.approx(read_json(tmp_path / "run" / "metrics.json")["accuracy"])

    ft.finetune(task="sst2", model_dir=model_dir, train_file=str(data / "train.tsv"),
                validation_file=str(data / "validation.tsv"), out_dir=str(tmp_path / "off"), seed=1, device="cpu",
                settings={"epochs": 1, "batch_size": 16, "max_length": 32})
    assert not (tmp_path / "off" / "tensorboard").exists()


def test_progress_lines_show_step_total_loss_rate_and_eta(model_dir, data, tmp_path, caplog):
    caplog.set_level("INFO", logger="bertflow.tracking")
    run("sst2", model_dir, data, tmp_path / "run", epochs=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "bertflow.tracking"]
    assert lines and all("/6 " in line and "loss" in line and "examples_per_s" in line and "eta" in line
                         for line in lines)
    assert lines[-1].split()[2] == "6/6"
