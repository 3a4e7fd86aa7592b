"""Model acceptance and download for baselines of every family: the start-up checks read
transformers' auto mappings, refuse what is not an encoder or whose tokenizer does not match, and
download_model saves the base encoder that fine-tuning reads (local folders stand in for Hub ids)."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers.models.auto import modeling_auto

from bertflow import checks
from bertflow.errors import DataError
from bertflow.finetune import load_task_model
from bertflow.models import download_model

from support.families import FAMILIES


@pytest.mark.parametrize("mapping", ["MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
                                     "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
                                     "MODEL_FOR_MASKED_LM_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"])
def test_the_start_up_reading_of_the_auto_mappings_is_transformers_own(mapping):
    assert checks.auto_model_types(mapping) == frozenset(getattr(modeling_auto, mapping))


def test_every_family_passes_the_start_up_checks(family_models):
    for family, folder in family_models.items():
        assert checks.model_folder_problems(folder, family, {"sst2": 64, "squad": 128},
                                            {"sst2": "auto", "squad": "auto"}) == [], family


def test_roberta_positions_count_from_the_pad_id(family_models):
    """RoBERTa's max_position_embeddings 130 with pad id 1 holds 128 positions, not 130."""
    problems = checks.model_folder_problems(family_models["roberta"], "k", {"squad": 129})
    assert problems == [f"k: finetune.squad.max_length 129 exceeds the model's 128 positions (max_position_embeddings "
                        f"in {family_models['roberta']}/config.json); lower max_length"]


def test_unpad_true_for_a_family_it_does_not_serve_is_refused_at_start(family_models):
    problems = checks.model_folder_problems(family_models["deberta-v2"], "finetune.baselines.deberta",
                                            unpad={"sst2": True, "squad": "auto"})
    assert problems == ["finetune.baselines.deberta: finetune.sst2.unpad is true but the unpadded encoder serves "
                        "model_type bert / roberta / xlm-roberta / electra (BERT's layer layout), not 'deberta-v2'; "
                        "set unpad: auto or false"]


@pytest.fixture
def copy_of(family_models, tmp_path):
    def copy(family):
        return shutil.copytree(family_models[family], tmp_path / family)
    return copy


def test_a_tokenizer_of_another_model_is_refused(family_models, copy_of):
    folder = copy_of("bert")
    for name in ("tokenizer.json", "tokenizer_config.json"):  # XLM-R's: other ids, no [CLS]
        shutil.copy(f"{family_models['roberta']}/{name}", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 300}))
    message = "; ".join(checks.model_folder_problems(str(folder), "k", {"squad": 64}))
    assert f"{folder}/tokenizer.json has 400 tokens but the model's embedding has 300 rows" in message


def test_a_tokenizer_without_the_special_tokens_a_task_needs_is_refused(copy_of):
    folder = copy_of("modernbert")
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    del settings["cls_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    assert checks.model_folder_problems(str(folder), "k", {"sst2": 64}) == []  # classification pads only
    assert checks.model_folder_problems(str(folder), "k", {"squad": 64}) == [
        f"k: {folder}/tokenizer.json has no cls_token, which finetune.squad needs "
        "(expected the tokenizer's pad_token and cls_token and sep_token)"]
    with pytest.raises(DataError, match="has no cls_token, which question answering needs"):
        load_task_model("qa", str(folder))


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("my model\n")
    assert checks.model_folder_problems(str(tmp_path / "notes"), "finetune.baselines.mine") == [
        f"finetune.baselines.mine: {tmp_path}/notes has no config.json; expected a model folder (save_pretrained)"]


@pytest.mark.parametrize("family", FAMILIES)
def test_download_model_saves_the_base_encoder_that_fine_tuning_reads(family_models, family, tmp_path):
    """The family folders hold pretraining heads (MLM, ELECTRA's discriminator), as Hub checkpoints
    do; the saved baseline is the encoder alone, with only the weights the checkpoint had."""
    download_model(family_models[family], str(tmp_path / "baseline"))
    saved = tmp_path / "baseline"
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= {p.name for p in saved.iterdir()}
    architecture = json.loads((saved / "config.json").read_text())["architectures"]
    assert len(architecture) == 1 and architecture[0].endswith("Model"), architecture
    model, _, info = load_task_model("qa", str(saved))
    encoder = f"{model.base_model_prefix}."
    assert info["missing_keys"] and not [k for k in info["missing_keys"] if k.startswith(encoder)]  # the head only
    assert not info["unexpected_keys"]


def test_a_bert_checkpoint_with_its_pretraining_heads_reaches_the_parameter_report(tmp_path):
    """BertForPreTraining (MLM + next-sentence heads), as the Hub's bert-base-* are saved: the
    downloaded folder is the encoder, which the parameter report reads as it is."""
    from transformers import BertConfig, BertForPreTraining

    from bertflow.params_report import parameter_report

    from support.families import family_tokenizer

    tokenizer = family_tokenizer("bert")
    hub = BertForPreTraining(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64))
    hub.save_pretrained(tmp_path / "hub")
    tokenizer.save_pretrained(tmp_path / "hub")
    download_model(str(tmp_path / "hub"), str(tmp_path / "baseline"))
    report = parameter_report(tmp_path / "baseline", name="bert")
    assert report["parameters"]["total"] == sum(p.numel() for p in hub.bert.parameters())
    assert report["parameters"]["head"] == 0
