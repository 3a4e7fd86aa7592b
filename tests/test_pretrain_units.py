"""Unit tests of the corpus, tokenizer, block and pretraining building blocks."""

from __future__ import annotations

import pytest
import torch

from bertflow import presets, synthetic
from bertflow.blocks import build_blocks, load_blocks
from bertflow.errors import ConfigError, DataError, ResourceError
from bertflow.masking import Masker, fixed_eval_masks
from bertflow.pretrain import MaskedLMObjective, Settings, build_model, check_blocks_match, resolve_device
from bertflow.tokenizer import load_tokenizer, train_tokenizer

SPECIALS = (0, 1, 2, 3, 4)


def make_masker(seq_len=64, p=0.15, vocab=500):
    return Masker(seq_len=seq_len, mlm_probability=p, mask_id=4, vocab_size=vocab, special_ids=SPECIALS)


def test_masker_masks_exactly_k_non_special_positions():
    ids = torch.randint(5, 500, (256, 64))
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    batch = make_masker()(ids, torch.Generator().manual_seed(0))
    assert batch.positions.shape == (256, round(64 * 0.15))
    assert not torch.isin(batch.targets, torch.tensor(SPECIALS)).any()
    assert torch.equal(batch.targets, ids.gather(1, batch.positions))
    # Each row's positions are distinct, and only they may differ from the input.
    assert all(len(set(row.tolist())) == batch.positions.shape[1] for row in batch.positions)
    changed = batch.inputs != ids
    changed.scatter_(1, batch.positions, False)
    assert not changed.any()


def test_masker_replacement_shares_are_80_10_10():
    ids = torch.randint(5, 500, (2000, 64))
    batch = make_masker()(ids, torch.Generator().manual_seed(1))
    replaced = batch.inputs.gather(1, batch.positions)
    share_mask = (replaced == 4).float().mean().item()
    share_kept = (replaced == batch.targets).float().mean().item()
    assert share_mask == pytest.approx(0.8, abs=0.01)
    assert share_kept == pytest.approx(0.1 + 0.1 / 500, abs=0.01)


def test_eval_masks_are_fixed_by_seed():
    blocks = torch.randint(5, 500, (100, 32))
    masker = make_masker(seq_len=32)
    a, b = fixed_eval_masks(blocks, masker, seed=5), fixed_eval_masks(blocks, masker, seed=5)
    c = fixed_eval_masks(blocks, masker, seed=6)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.positions, b.positions)
    assert not torch.equal(a.positions, c.positions)


def test_masked_only_head_gives_the_full_head_loss():
    settings = Settings(preset=None, model=dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                                intermediate_size=64), seq_len=16, seed=0)
    model = build_model(settings, vocab_size=100, pad_token_id=0).eval()
    ids = torch.randint(5, 100, (4, 16))
    batch = make_masker(seq_len=16, vocab=100)(ids, torch.Generator().manual_seed(0))
    fast = MaskedLMObjective(model, masked_only_head=True)(batch.inputs, batch.positions, batch.targets)
    full = MaskedLMObjective(model, masked_only_head=False)(batch.inputs, batch.positions, batch.targets)
    # And both equal transformers' own loss with labels only at the masked positions.
    labels = torch.full_like(ids, -100).scatter(1, batch.positions, batch.targets)
    reference = model(input_ids=batch.inputs, labels=labels).loss
    assert fast.item() == pytest.approx(full.item(), rel=1e-5)
    assert fast.item() == pytest.approx(reference.item(), rel=1e-5)


def test_presets_and_overrides():
    assert presets.architecture("mini")["num_hidden_layers"] == 4
    assert presets.architecture("base")["num_attention_heads"] == 12
    assert presets.architecture("tiny", {"hidden_size": 64, "num_attention_heads": 2})["hidden_size"] == 64
    with pytest.raises(ConfigError, match="unknown preset"):
        presets.architecture("huge")
    with pytest.raises(ConfigError, match="not divisible"):
        presets.architecture("tiny", {"num_attention_heads": 3})


def test_seq_len_beyond_positions_is_rejected():
    settings = Settings(preset="tiny", model={"max_position_embeddings": 64}, seq_len=128)
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        build_model(settings, vocab_size=100, pad_token_id=0)


def test_cuda_requested_without_gpu_fails_clearly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ResourceError, match="no GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_generated_corpus_is_deterministic():
    assert synthetic.generate_corpus(300, seed=3) == synthetic.generate_corpus(300, seed=3)
    assert synthetic.generate_corpus(300, seed=3) != synthetic.generate_corpus(300, seed=4)


@pytest.fixture(scope="module")
def tokenizer_and_blocks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    text = synthetic.generate_corpus(1500, seed=2)
    (root / "train.txt").write_text("\n".join(text[:-20]))
    (root / "valid.txt").write_text("\n".join(text[-20:]))
    train_tokenizer(train_file=str(root / "train.txt"), validation_file=str(root / "valid.txt"),
                    out_dir=str(root / "tok"), out_report=str(root / "report.json"), vocab_size=300,
                    lowercase=True, min_frequency=2, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                    model_max_length=512)
    build_blocks(tokenizer_dir=str(root / "tok"), train_file=str(root / "train.txt"),
                 validation_file=str(root / "valid.txt"), seq_len=32, out_dir=str(root / "blocks"))
    return root


def test_tokenizer_report_and_special_tokens(tokenizer_and_blocks):
    import json

    report = json.loads((tokenizer_and_blocks / "report.json").read_text())
    tok = load_tokenizer(str(tokenizer_and_blocks / "tok"))
    assert report["vocab_size"] == len(tok) <= 300
    assert 0 <= report["unk_rate"] < 0.05 and report["subwords_per_word"] >= 1.0
    assert report["environment"]["packages"]["tokenizers"]
    encoded = tok("alice lives in paris")["input_ids"]
    assert encoded[0] == tok.cls_token_id and encoded[-1] == tok.sep_token_id
    assert tok.mask_token_id == 4 and tok.pad_token_id == 0


def test_blocks_round_trip_and_mismatch_checks(tokenizer_and_blocks, tmp_path):
    root = tokenizer_and_blocks
    meta, blocks = load_blocks(str(root / "blocks"))
    assert blocks["train"].shape[1] == 32 and len(blocks["train"]) == meta["train_blocks"] > 0
    tok = load_tokenizer(str(root / "tok"))
    check_blocks_match(meta, tok, str(root / "tok"), str(root / "blocks"), 32)
    with pytest.raises(DataError, match="pretrain.seq_len is 64"):
        check_blocks_match(meta, tok, str(root / "tok"), str(root / "blocks"), 64)
    with pytest.raises(DataError, match="another tokenizer"):
        check_blocks_match({**meta, "vocab_size": meta["vocab_size"] + 1}, tok, str(root / "tok"),
                           str(root / "blocks"), 32)
    with pytest.raises(DataError, match="blocks_meta.json"):
        load_blocks(str(tmp_path))
