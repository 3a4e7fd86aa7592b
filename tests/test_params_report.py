"""Parameter report: counts per module, the closed-form check, memory figures, Markdown + JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import (BertConfig, BertForMaskedLM, BertForQuestionAnswering,
                          BertForSequenceClassification, DistilBertConfig, DistilBertModel, RobertaConfig,
                          RobertaForMaskedLM, RobertaForSequenceClassification)

from bertflow.errors import ConfigError, DataError
from bertflow import params_report
from bertflow.params_report import (architecture, check_counts, closed_form, count_parameters, module_table,
                                    parameter_report, report_markdown, safetensors_shapes, write_params_report)

D, D_FF, LAYERS, VOCAB = 32, 64, 2, 150
CONFIG = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2,
              intermediate_size=D_FF, max_position_embeddings=64)
# Written out independently of the module under test: BERT's per-layer formula from the issue.
PER_LAYER = 4 * (D * D + D) + 2 * D * D_FF + D_FF + D + 4 * D
EMBEDDINGS = VOCAB * D + 64 * D + 2 * D + 2 * D


@pytest.mark.parametrize("model_class, head", [
    (BertForMaskedLM, D * D + D + 2 * D + VOCAB),  # transform + layer norm + output bias; decoder tied
    (BertForSequenceClassification, (D * D + D) + 2 * D + 2),  # pooler + classifier (2 labels)
    (BertForQuestionAnswering, 2 * D + 2),  # start/end logits
])
def test_counted_parameters_equal_closed_form(tmp_path, model_class, head):
    torch.manual_seed(0)
    model_class(BertConfig(**CONFIG)).save_pretrained(tmp_path)
    report = parameter_report(tmp_path, name="m")
    counted = sum(p.numel() for p in model_class.from_pretrained(tmp_path).parameters())
    assert report["parameters"]["total"] == counted == EMBEDDINGS + LAYERS * PER_LAYER + head
    assert report["parameters"]["per_layer"] == PER_LAYER
    assert report["parameters"]["trainable"] == counted
    rows = {(r["group"], r["module"]): r["params"] for r in report["modules"]}
    for layer in range(LAYERS):
        for part in ("attention.query (Q)", "attention.key (K)", "attention.value (V)", "attention.output (O)"):
            assert rows[(f"layer {layer}", part)] == D * D + D
        assert rows[(f"layer {layer}", "attention.layer_norm")] == rows[(f"layer {layer}", "output.layer_norm")] == 2 * D
        assert rows[(f"layer {layer}", "feed_forward.in")] == D * D_FF + D_FF
    assert rows[("embeddings", "word_embeddings")] == VOCAB * D
    assert sum(rows.values()) == counted
    assert report["parameters"]["tied_word_embeddings"] is (model_class is BertForMaskedLM)
    assert (("pooler", "pooler.dense") in rows) is (model_class is BertForSequenceClassification)


def test_issue_example_word_embedding_memory_and_roberta_large_check():
    """50,265 x 1,024 = 51,471,360 params = 205,885,440 bytes in fp32 (RoBERTa-large), on the meta device."""
    config = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1)
    with torch.device("meta"):
        model = RobertaForMaskedLM(config)
    arch = {**architecture(model.config), "architecture": "RobertaForMaskedLM"}
    table = module_table(model)
    expected = closed_form(arch, has_pooler=False, tied_decoder=True)
    check_counts(table, expected, arch, "roberta-large")
    assert expected["total"] == sum(p.numel() for p in model.parameters()) == 355_412_057
    words = model.get_input_embeddings().weight.numel()
    assert words == 51_471_360 and words * 4 == 205_885_440


def test_mismatch_with_closed_form_fails_naming_the_model(tmp_path):
    BertForMaskedLM(BertConfig(**CONFIG)).save_pretrained(tmp_path)
    model = BertForMaskedLM.from_pretrained(tmp_path)
    arch = {**architecture(model.config), "architecture": "BertForMaskedLM"}
    table = module_table(model)
    table[5]["params"] += 1  # one layer-0 row off by one parameter
    with pytest.raises(DataError, match=r"my/model.*layer 0: counted"):
        check_counts(table, closed_form(arch, has_pooler=False, tied_decoder=True), arch, "my/model")
    # An untied decoder is counted, so claiming a tied one must fail too.
    untied = BertForMaskedLM(BertConfig(**CONFIG, tie_word_embeddings=False))
    with pytest.raises(DataError, match="head: counted"):
        check_counts(module_table(untied), closed_form(arch, has_pooler=False, tied_decoder=True), arch, "x")


def test_markdown_and_json_outputs(tmp_path):
    BertForMaskedLM(BertConfig(**CONFIG)).save_pretrained(tmp_path / "model")
    write_params_report(str(tmp_path / "model"), tmp_path / "r.json", tmp_path / "r.md", name="pretrained")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["word_embeddings"]["bytes"] == {"fp32": VOCAB * D * 4, "fp16": VOCAB * D * 2, "bf16": VOCAB * D * 2}
    assert report["files"]["weights_bytes"] == (tmp_path / "model" / "model.safetensors").stat().st_size
    assert report["closed_form"]["matches_counted"] and report["environment"]["packages"]["torch"]
    text = (tmp_path / "r.md").read_text()
    assert f"{VOCAB} x {D} = {VOCAB * D:,} parameters = {VOCAB * D * 4:,} bytes in fp32" in text
    assert "| layer 1 | attention.value (V) | 1,056 |" in text and "## Closed-form check" in text


def test_unsupported_model_type_is_a_clear_error(tmp_path):
    DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="distilbert.*not covered"):
        parameter_report(tmp_path, name="x")
    with pytest.raises(DataError, match="no config.json"):
        parameter_report(tmp_path / "missing", name="x")


HEADER_CASES = [
    (BertForMaskedLM, BertConfig(**CONFIG)),
    (BertForMaskedLM, BertConfig(**CONFIG, tie_word_embeddings=False)),
    (BertForSequenceClassification, BertConfig(**CONFIG, num_labels=3)),
    (BertForQuestionAnswering, BertConfig(**{**CONFIG, "num_hidden_layers": 3, "type_vocab_size": 1})),
    (RobertaForMaskedLM, RobertaConfig(**CONFIG)),
    (RobertaForSequenceClassification, RobertaConfig(**CONFIG)),
]


@pytest.mark.parametrize("model_class, config", HEADER_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_header_counts_equal_the_loaded_model(tmp_path, model_class, config):
    """config.json + safetensors headers give the loaded model's table (same rows, same order) and totals."""
    model_class(config).save_pretrained(tmp_path)
    header = count_parameters(tmp_path)
    model = model_class.from_pretrained(tmp_path)
    assert header["table"] == module_table(model)
    assert header["total"] == header["trainable"] == sum(p.numel() for p in model.parameters())
    assert header["tied"] is (model.get_output_embeddings() is not None
                              and model.get_output_embeddings().weight is model.get_input_embeddings().weight)
    assert header["arch"] == architecture(model.config)
    assert header["word_shape"] == list(model.get_input_embeddings().weight.shape)


def test_report_from_headers_equals_report_from_loaded_model(tmp_path, monkeypatch):
    """The whole JSON (but the environment) and Markdown are those of the transformers-loaded path."""
    BertForSequenceClassification(BertConfig(**CONFIG)).save_pretrained(tmp_path / "m")
    fast = parameter_report(tmp_path / "m", name="sst2/pretrained")
    monkeypatch.setattr(params_report, "_header_counts", lambda model_dir: None)
    loaded = parameter_report(tmp_path / "m", name="sst2/pretrained")
    fast.pop("environment"), loaded.pop("environment")
    assert fast == loaded
    assert report_markdown(fast) == report_markdown(loaded)


def test_sharded_and_bin_weights(tmp_path):
    model = BertForMaskedLM(BertConfig(**CONFIG))
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    expected = sum(p.numel() for p in model.parameters())
    assert safetensors_shapes(tmp_path / "sharded") is not None
    assert parameter_report(tmp_path / "sharded", name="x")["parameters"]["total"] == expected
    # .bin weights only: no header to read, so the model is loaded.
    (tmp_path / "bin").mkdir()
    model.config.save_pretrained(tmp_path / "bin")
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    assert safetensors_shapes(tmp_path / "bin") is None
    assert parameter_report(tmp_path / "bin", name="x")["parameters"]["total"] == expected


def test_report_imports_neither_torch_nor_transformers(tmp_path):
    """The stage reads headers only; importing transformers would cost ~10 s per report."""
    BertForMaskedLM(BertConfig(**CONFIG)).save_pretrained(tmp_path / "m")
    code = ("import sys; from bertflow.params_report import write_params_report; "
            f"r = write_params_report({str(tmp_path / 'm')!r}, {str(tmp_path / 'r.json')!r}, "
            f"{str(tmp_path / 'r.md')!r}, name='m'); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), r['environment']['device'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] {'torch_imported': False")
