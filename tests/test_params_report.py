"""Parameter report: counts per module for every family, the closed-form check, memory figures, Markdown + JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import transformers
from transformers import (AlbertConfig, AutoModel, BertConfig, BertForMaskedLM, BertForPreTraining,
                          BertForQuestionAnswering, BertForSequenceClassification, DebertaV2Config, DistilBertConfig,
                          ElectraConfig, ElectraForPreTraining, ModernBertConfig, MPNetConfig, MPNetModel,
                          RobertaConfig, RobertaForMaskedLM, RobertaForSequenceClassification, SqueezeBertConfig,
                          XLMRobertaConfig)

from bertflow.errors import DataError
from bertflow import params_report
from bertflow.params_report import (architecture, check_counts, closed_form, count_parameters, module_table,
                                    parameter_report, report_markdown, safetensors_shapes, write_params_report)

D, D_FF, LAYERS, VOCAB = 32, 64, 2, 150
CONFIG = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2,
              intermediate_size=D_FF, max_position_embeddings=64)
# Written out independently of the module under test: BERT's per-layer count (4 attention
# projections, 2 feed-forward matrices, 2 LayerNorms).
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


def test_folder_without_a_model_config_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no config.json"):
        parameter_report(tmp_path / "missing", name="x")


BASE = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2,
            intermediate_size=D_FF, max_position_embeddings=64)
# One tiny config per family, with the settings that change its formula (factorised embeddings,
# shared layers, grouped convolutions, relative positions, ModernBERT's special token ids).
FAMILY_CONFIGS = {
    "bert": lambda: BertConfig(**BASE),
    "roberta": lambda: RobertaConfig(**{**BASE, "max_position_embeddings": 66}, type_vocab_size=1, pad_token_id=1),
    "xlm-roberta": lambda: XLMRobertaConfig(**{**BASE, "max_position_embeddings": 66}, type_vocab_size=1,
                                            pad_token_id=1),
    "distilbert": lambda: DistilBertConfig(vocab_size=VOCAB, dim=D, n_layers=LAYERS, n_heads=2, hidden_dim=D_FF,
                                           max_position_embeddings=64),
    "electra": lambda: ElectraConfig(**BASE, embedding_size=16),
    "albert": lambda: AlbertConfig(**BASE, embedding_size=16, num_hidden_groups=2, inner_group_num=1),
    "squeezebert": lambda: SqueezeBertConfig(**BASE, embedding_size=D, q_groups=2, k_groups=2, v_groups=2,
                                             post_attention_groups=2, intermediate_groups=4, output_groups=4),
    "deberta-v3": lambda: DebertaV2Config(**BASE, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                          position_buckets=16, norm_rel_ebd="layer_norm", share_att_key=True,
                                          position_biased_input=False, type_vocab_size=0),
    "deberta-v2": lambda: DebertaV2Config(**BASE, relative_attention=True, pos_att_type="p2c|c2p"),
    "modernbert": lambda: ModernBertConfig(**{**BASE, "num_hidden_layers": 3}, global_attn_every_n_layers=3,
                                           pad_token_id=0, eos_token_id=1, bos_token_id=2, cls_token_id=2,
                                           sep_token_id=1),
}


def _counted(model_class, path) -> tuple[int, int]:
    """(all parameters, base-model parameters) of the saved model as transformers loads it."""
    model = model_class.from_pretrained(path)
    return sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.base_model.parameters())


@pytest.mark.parametrize("family", sorted(FAMILY_CONFIGS))
@pytest.mark.parametrize("kind", ["Model", "ForSequenceClassification", "ForQuestionAnswering", "ForMaskedLM",
                                  "ForMaskedLM-untied"])
def test_every_family_is_counted_and_checked_in_closed_form(tmp_path, family, kind):
    config = FAMILY_CONFIGS[family]()
    if kind.endswith("-untied"):  # the decoder has its own weights: counted, and in the closed form
        kind, config.tie_word_embeddings = kind.removesuffix("-untied"), False
    model_class = getattr(transformers, AutoModel.from_config(config).__class__.__name__.replace("Model", kind))
    torch.manual_seed(0)
    model_class(config).save_pretrained(tmp_path)
    report = parameter_report(tmp_path, name=family)
    total, base = _counted(model_class, tmp_path)
    params, closed = report["parameters"], report["closed_form"]
    assert params["total"] == sum(row["params"] for row in report["modules"]) == total
    assert params["base_model"] == closed["base_model"] == base
    assert closed["missing"] is None and closed["total"] == total
    assert params["tied_word_embeddings"] is (kind == "ForMaskedLM" and config.tie_word_embeddings)
    words = params_report.math.prod(report["word_embeddings"]["shape"])
    assert report["word_embeddings"]["params"] == words == VOCAB * report["embedding_size"]
    assert report["word_embeddings"]["bytes"]["fp32"] == 4 * words and report["d_model"] == D
    assert report["d_ff"] == D_FF and report["layers"] == config.num_hidden_layers


@pytest.mark.parametrize("model_class, config", [(BertForPreTraining, BertConfig(**BASE)),
                                                 (ElectraForPreTraining, ElectraConfig(**BASE, embedding_size=16))],
                         ids=["bert", "electra"])
def test_hub_checkpoint_with_a_pretraining_head(tmp_path, model_class, config):
    """What a Hub download saves (architectures: BertForPreTraining / ElectraForPreTraining) reports,
    from the headers alone, with the head outside the base model's count."""
    model_class(config).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [model_class.__name__]
    report = parameter_report(tmp_path, name="hub")
    total, base = _counted(model_class, tmp_path)
    assert report["parameters"]["total"] == report["closed_form"]["total"] == total
    assert report["parameters"]["base_model"] == base and report["parameters"]["head"] == total - base > 0
    assert report["parameters"]["tied_word_embeddings"] is (model_class is BertForPreTraining)


def test_a_head_without_a_formula_is_said_and_the_body_still_checked(tmp_path):
    from transformers import DistilBertForTokenClassification

    DistilBertForTokenClassification(FAMILY_CONFIGS["distilbert"]()).save_pretrained(tmp_path)
    report = parameter_report(tmp_path, name="ner")
    total, base = _counted(DistilBertForTokenClassification, tmp_path)
    assert report["parameters"]["total"] == total and report["closed_form"]["base_model"] == base
    assert report["closed_form"]["missing"] == "no closed form for the DistilBertForTokenClassification head"
    assert report["closed_form"]["total"] is None
    assert "No closed form for the DistilBertForTokenClassification head" in report_markdown(report)


def test_unknown_sub_modules_and_families_are_counted_not_refused(tmp_path):
    """A module the table has no row for goes to "other"; a family without formulas says so."""
    assert params_report.classify_parameter("bert.encoder.layer.0.adapter.down.weight", "bert") == (
        "other", "encoder.layer.0.adapter.down")
    assert params_report.classify_parameter("encoder.extra_norm.weight") == ("other", "encoder.extra_norm")
    MPNetModel(MPNetConfig(**BASE)).save_pretrained(tmp_path)
    report = parameter_report(tmp_path, name="mpnet")
    assert report["parameters"]["total"] == _counted(MPNetModel, tmp_path)[0]
    assert report["closed_form"]["missing"] == "no closed form for mpnet"
    assert "No closed form for mpnet in bertflow.params_report" in report_markdown(report)


HEADER_CASES = [
    (BertForMaskedLM, BertConfig(**CONFIG)),
    (BertForMaskedLM, BertConfig(**CONFIG, tie_word_embeddings=False)),
    (BertForSequenceClassification, BertConfig(**CONFIG, num_labels=3)),
    (BertForQuestionAnswering, BertConfig(**{**CONFIG, "num_hidden_layers": 3, "type_vocab_size": 1})),
    (RobertaForMaskedLM, RobertaConfig(**CONFIG)),
    (RobertaForSequenceClassification, RobertaConfig(**CONFIG)),
    (BertForPreTraining, BertConfig(**CONFIG)),
    (ElectraForPreTraining, ElectraConfig(**CONFIG, embedding_size=16)),
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
