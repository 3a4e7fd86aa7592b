"""The unpadded encoder (bertflow.unpadding) computes what transformers' padded forward computes
at every real token, forward and backward, for every family it serves (BERT, RoBERTa, XLM-R,
ELECTRA with factorised embeddings), and leaves the model as it found it.

On the CPU by default; `BERTFLOW_TEST_DEVICE=cuda` runs the same checks on a GPU (the device
script's `unpad_check`, profiles/airgapped/gpu_sweeps.sh)."""

from __future__ import annotations

import os

import pytest
import torch
import transformers
from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification

from bertflow.unpadding import ROW_ATTENTION_MIN_WIDTH, Unpadding, restore_encoder, supports_unpadding, unpad_encoder

CONFIG = dict(vocab_size=200, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=160)
NARROW = {"lengths": (5, 17, 9, 3, 17, 12), "width": 17}  # attention on the padded batch
WIDE = {"lengths": (5, 150, 90, 3, 130, 12), "width": 150}  # on CPU: attention row by row
assert NARROW["width"] < ROW_ATTENTION_MIN_WIDTH <= WIDE["width"]
DEVICE = torch.device(os.environ.get("BERTFLOW_TEST_DEVICE", "cpu"))
# The families the unpadded encoder serves: config class and extra config. RoBERTa and XLM-R pad with
# id 1 and count positions from 2 (max_position_embeddings + 2), with one token type; ELECTRA's
# embeddings are narrower than its layers (embeddings_project).
FAMILIES = {
    "bert": ("Bert", {}),
    "roberta": ("Roberta", {"pad_token_id": 1, "max_position_embeddings": 162, "type_vocab_size": 1}),
    "xlm-roberta": ("XLMRoberta", {"pad_token_id": 1, "max_position_embeddings": 162, "type_vocab_size": 1}),
    "electra": ("Electra", {"embedding_size": 16}),
}


def padded_batch(lengths=(5, 17, 9, 3, 17, 12), width=17, device=DEVICE, family="bert"):
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor(lengths)
    mask = (torch.arange(width) < lengths[:, None]).long()
    pad_id = FAMILIES[family][1].get("pad_token_id", 0)
    ids = torch.randint(5, 200, (len(lengths), width), generator=generator) * mask + pad_id * (1 - mask)
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if FAMILIES[family][1].get("type_vocab_size", 2) > 1:  # a question/context split, as in SQuAD
        batch["token_type_ids"] = ((torch.arange(width) >= 4).long() * mask).to(device)
    return batch


def model(cls, family="bert", **config):
    """`cls`: the BERT task class (BertForSequenceClassification / ...); the family's own is built."""
    prefix, extra = FAMILIES[family]
    config_class = getattr(transformers, f"{prefix}Config")
    cls = getattr(transformers, cls.__name__.replace("Bert", prefix, 1))
    torch.manual_seed(0)
    built = cls(config_class(**{**CONFIG, **extra, **config})).eval()
    if cls.__name__.endswith("ForQuestionAnswering"):  # a nonzero bias: padding positions must score exactly it
        torch.nn.init.normal_(built.qa_outputs.bias)
    return built.to(DEVICE)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", [NARROW, WIDE], ids=["narrow", "wide"])
@pytest.mark.parametrize("pooled_only", [True, False])
def test_sequence_classification_logits_and_gradients_match_the_padded_forward(pooled_only, shape, family):
    batch, labels = padded_batch(**shape, family=family), torch.tensor([0, 1, 1, 0, 1, 0], device=DEVICE)
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    padded = model(BertForSequenceClassification, family, **no_dropout)
    padded.train()  # gradients through every module; dropout is off, so both sides are deterministic
    reference = padded(**batch, labels=labels)
    reference.loss.backward()
    unpadded = model(BertForSequenceClassification, family, **no_dropout)
    unpadded.train()
    unpad_encoder(unpadded, pooled_only=pooled_only)
    output = unpadded(**batch, labels=labels)
    output.loss.backward()

    torch.testing.assert_close(output.logits, reference.logits, rtol=1e-5, atol=1e-6)
    gradients = dict(unpadded.named_parameters())
    for name, parameter in padded.named_parameters():
        torch.testing.assert_close(gradients[name].grad, parameter.grad, rtol=1e-4, atol=1e-6, msg=name)


def pair_batch(tokenizer, max_length):
    """Sentence pairs through the tokenizer's pair template (bertflow.inputs), truncated longest_first."""
    from bertflow.inputs import encode_texts

    first = ["a cat sat on the mat .", "dogs run", "the river is long and the park is green and wide .", "hi"]
    second = ["a cat is sitting .", "the park near the river is big and green .", "no", "hello there friend ."]
    batch = encode_texts(tokenizer, first, second, max_length, token_types=True)
    assert batch["token_type_ids"].sum() > 0  # the second text is type 1
    return {k: v.to(DEVICE) for k, v in batch.items()}


@pytest.mark.parametrize("num_labels", [3, 1], ids=["three_classes", "regression"])
def test_pairs_match_the_padded_forward_for_classification_and_regression(num_labels, tmp_path):
    from support.finetune import make_tiny_model
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path, vocab_size=200))
    batch = pair_batch(tokenizer, max_length=16)
    labels = torch.tensor([0, 2, 1, 2]) if num_labels == 3 else torch.tensor([0.5, 2.0, 4.5, 1.0])
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=num_labels,
                      problem_type="regression" if num_labels == 1 else None)
    padded, unpadded = (model(BertForSequenceClassification, **no_dropout).train() for _ in range(2))
    reference = padded(**batch, labels=labels.to(DEVICE))
    reference.loss.backward()
    unpad_encoder(unpadded, pooled_only=True)
    output = unpadded(**batch, labels=labels.to(DEVICE))
    output.loss.backward()
    torch.testing.assert_close(output.logits, reference.logits, rtol=1e-5, atol=1e-6)
    gradients = dict(unpadded.named_parameters())
    for name, parameter in padded.named_parameters():
        torch.testing.assert_close(gradients[name].grad, parameter.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", [NARROW, WIDE], ids=["narrow", "wide"])
def test_question_answering_scores_match_at_real_tokens_and_padding_scores_the_bias(shape, family):
    batch = padded_batch(**shape, family=family)
    padded = model(BertForQuestionAnswering, family)
    reference = padded(**batch)
    unpad_encoder(padded)
    output = padded(**batch)
    real = batch["attention_mask"].bool()
    bias_start, bias_end = padded.qa_outputs.bias.tolist()
    torch.testing.assert_close(output.start_logits[real], reference.start_logits[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(output.end_logits[real], reference.end_logits[real], rtol=1e-5, atol=1e-5)
    assert torch.all(output.start_logits[~real] == bias_start) and torch.all(output.end_logits[~real] == bias_end)
    assert not torch.allclose(reference.start_logits[~real], output.start_logits[~real])  # really unpadded


def test_wide_cpu_batches_attend_row_by_row():
    assert Unpadding(padded_batch(**NARROW, device="cpu")["attention_mask"]).row_lengths is None
    assert Unpadding(padded_batch(**WIDE, device="cpu")["attention_mask"]).row_lengths == list(WIDE["lengths"])


def test_pooled_only_returns_the_cls_row_and_training_draws_dropout_on_real_tokens_only():
    batch = padded_batch()
    classifier = model(BertForSequenceClassification)
    unpad_encoder(classifier, pooled_only=True)
    assert classifier.bert(**batch).last_hidden_state.shape == (6, 1, 32)
    classifier.train()
    torch.manual_seed(1)
    losses = [classifier(**batch, labels=torch.zeros(6, dtype=torch.long, device=DEVICE)).loss for _ in range(2)]
    assert losses[0] != losses[1] and all(torch.isfinite(loss) for loss in losses)  # dropout is live


def test_other_calls_take_the_padded_forward_and_restore_gives_it_back():
    batch = padded_batch()
    classifier = model(BertForSequenceClassification)
    reference = classifier(**batch).logits
    keys = list(classifier.state_dict())
    unpad_encoder(classifier, pooled_only=True)
    assert list(classifier.state_dict()) == keys  # saved checkpoints are unchanged
    no_mask = {"input_ids": batch["input_ids"]}
    torch.testing.assert_close(classifier(**no_mask).logits, model(BertForSequenceClassification)(**no_mask).logits)
    hidden = classifier.bert(**batch, output_hidden_states=True)
    assert hidden.last_hidden_state.shape == (6, 17, 32) and len(hidden.hidden_states) == 4
    left_padded = {k: v.flip(1) for k, v in batch.items()}  # [CLS] is not at position 0 in every row
    torch.testing.assert_close(classifier(**left_padded).logits,
                               model(BertForSequenceClassification)(**left_padded).logits)
    restore_encoder(classifier)
    assert "forward" not in vars(classifier.bert)
    torch.testing.assert_close(classifier(**batch).logits, reference)


def test_models_it_cannot_read_are_refused():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    distilbert = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=200, dim=32, n_layers=1, n_heads=2,
                                                                      hidden_dim=64))
    assert not supports_unpadding(distilbert)
    with pytest.raises(ValueError, match="serves model_type bert / roberta / xlm-roberta / electra.*not 'distilbert'"):
        unpad_encoder(distilbert)
    assert not supports_unpadding(BertForSequenceClassification(BertConfig(**CONFIG, chunk_size_feed_forward=4)))


@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
def test_bf16_autocast_as_on_a_gpu(cls):
    """The stage's GPU precision: the narrow path (padded attention, as on a GPU) under bf16
    autocast keeps its dtypes consistent and stays close to the padded forward."""
    batch = padded_batch(**NARROW)
    padded = model(cls)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        reference = padded(**batch)
        unpad_encoder(padded, pooled_only=cls is BertForSequenceClassification)
        output = padded(**batch)
    key = "logits" if cls is BertForSequenceClassification else "start_logits"
    real = slice(None) if key == "logits" else batch["attention_mask"].bool()
    assert output[key].dtype == reference[key].dtype
    torch.testing.assert_close(output[key][real].float(), reference[key][real].float(), rtol=0.05, atol=0.05)
