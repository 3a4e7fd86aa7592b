"""Baselines of every encoder family: inputs built the model's own way, QA windows whose offsets
lead back to the answers for WordPiece, byte-level BPE and Unigram tokenizers."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoConfig, AutoTokenizer

from bertflow import task_data
from bertflow.inputs import encode_texts, uses_token_types
from bertflow.qa import decode_answers, eval_features, train_features
from bertflow.synthetic_tasks import generate_squad

from support.families import FAMILIES

TOKEN_TYPES = {"bert", "electra", "albert", "squeezebert"}


@pytest.mark.parametrize("family", FAMILIES)
def test_token_types_only_where_the_model_has_them(family_models, family):
    config = AutoConfig.from_pretrained(family_models[family])
    assert uses_token_types(config) == (family in TOKEN_TYPES)
    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    enc = encode_texts(tokenizer, ["alice lives in paris .", "a film"], ["where ?", "good"], 16,
                       token_types=uses_token_types(config))
    assert ("token_type_ids" in enc) == (family in TOKEN_TYPES)
    assert enc["input_ids"].tolist()[1][: int(enc["attention_mask"][1].sum())] == tokenizer("a film", "good")["input_ids"]


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_windows_use_the_tokenizer_s_own_pair_template(family_models, family):
    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    example = {"id": "q", "question": "where does alice live ?", "context": "Alice lives in Paris .",
               "answers": {"text": ["Paris"], "answer_start": [15]}}
    token_types = family in TOKEN_TYPES
    features = train_features(tokenizer, [example], max_length=64, doc_stride=8, token_types=token_types)
    real = sum(features["attention_mask"][0])
    expected = tokenizer(example["question"], example["context"], return_token_type_ids=True)
    assert features["input_ids"][0][:real] == expected["input_ids"]
    assert set(features["input_ids"][0][real:]) == {tokenizer.pad_token_id}
    if token_types:
        assert features["token_type_ids"][0][:real] == expected["token_type_ids"]
    else:
        assert "token_type_ids" not in features


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "deberta-v2"])  # the three tokenizer kinds
def test_qa_offsets_decode_back_to_every_answer(family_models, family):
    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    examples = task_data.squad_examples(generate_squad(3, seed=2))
    token_types = family in TOKEN_TYPES
    features = train_features(tokenizer, examples, max_length=64, doc_stride=16, token_types=token_types)
    inputs, example_index, offsets = eval_features(tokenizer, examples, max_length=64, doc_stride=16,
                                                   token_types=token_types)
    assert len(features["input_ids"]) == len(example_index) > len(examples)  # long contexts are windowed
    n_windows, length = len(example_index), len(inputs["input_ids"][0])
    start_logits, end_logits = np.zeros((n_windows, length)), np.zeros((n_windows, length))
    for window, (s, e) in enumerate(zip(features["start_positions"], features["end_positions"])):
        cls_index = inputs["input_ids"][window].index(tokenizer.cls_token_id)
        if s != cls_index:
            start_logits[window, s] = end_logits[window, e] = 10.0
    predictions = decode_answers(examples, example_index, offsets, start_logits, end_logits,
                                 n_best=5, max_answer_length=30)
    for example in examples:
        assert predictions[example["id"]] == example["answers"]["text"][0]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_vocab_reduction_gives_identical_predictions_for_every_family(family_models, family, task):
    """The same logits with the embedding cut to the used rows. Without special tokens in the inputs
    RoBERTa's pad id 1 would become 0 in the reduced embedding and shift its position ids, which
    count from the pad id: the reduction keeps the rows below it."""
    import torch

    from bertflow.finetune import load_task_model
    from bertflow.vocab_reduction import VocabReduction

    kind, labels = ("classification", ["negative", "positive"]) if task == "sst2" else ("qa", None)
    model, tokenizer, _ = load_task_model(kind, family_models[family], labels=labels)
    model.eval()
    batch = tokenizer(["Alice lives in Paris .", "a dull film"], add_special_tokens=False, padding=True,
                      return_token_type_ids=False, return_tensors="pt")
    key = "logits" if task == "sst2" else "start_logits"
    before = model(**batch)[key]
    pad = tokenizer.pad_token_id
    reduction = VocabReduction(model, [i for i in batch["input_ids"].unique().tolist() if i != pad], [])
    reduction.apply()
    assert len(reduction.kept) < len(tokenizer)
    if family in ("roberta", "xlm-roberta"):
        assert pad == 1 and int(reduction.lookup[pad]) == 1
    after = model(**{**batch, "input_ids": reduction.map_ids(batch["input_ids"])})[key]
    torch.testing.assert_close(after, before)
    reduction.restore()
    torch.testing.assert_close(model(**batch)[key], before)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_decay_spares_what_the_trainer_spares(family_models, family):
    """Fine-tuning's AdamW groups decay the same parameters as transformers' Trainer, so the
    benchmark against it and the baselines compare one optimizer."""
    from transformers import AutoModelForSequenceClassification, Trainer

    from bertflow.training import weight_decay_groups

    model = AutoModelForSequenceClassification.from_pretrained(family_models[family], num_labels=2)
    decay, no_decay = weight_decay_groups(model, 0.01)
    names = {id(param): name for name, param in model.named_parameters()}
    trainer_decays = set(Trainer.get_decay_parameter_names(None, model))
    assert {names[id(param)] for param in decay["params"]} == trainer_decays
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)
