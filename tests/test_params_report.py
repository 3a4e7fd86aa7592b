"""Parameter report: counts per module, the closed-form check, memory figures, Markdown + JSON."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (BertConfig, BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
                          DistilBertConfig, DistilBertModel, RobertaConfig, RobertaForMaskedLM)

from bertflow.errors import ConfigError, DataError
from bertflow.params_report import (architecture, check_counts, closed_form, module_table, parameter_report,
                                    write_params_report)

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
