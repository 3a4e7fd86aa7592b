"""Unit tests of the corpus, tokenizer, block and pretraining building blocks."""

from __future__ import annotations

import logging
import math
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch

from bertflow import block_loader, presets, pretrain, synthetic
from bertflow.block_files import open_split, read_meta
from bertflow.blocks import build_blocks, load_blocks
from bertflow.checkpoints import PROGRESS_FORMAT
from bertflow.errors import ConfigError, DataError, ResourceError
from bertflow.masking import Masker, fixed_eval_masks
from bertflow.pretrain import MaskedLMObjective, Settings, build_model, check_blocks_match
from bertflow.runtime import resolve_device
from bertflow.tokenizer import load_tokenizer
from bertflow.training import write_rows_csv
from support.pretrain import generated_tokenizer, random_block_folder

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
    settings = Settings.from_config(dict(preset=None, model=dict(num_hidden_layers=1, hidden_size=32,
                                                             num_attention_heads=2, intermediate_size=64),
                                         seq_len=16, seed=0))
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
    settings = Settings.from_config(dict(preset="tiny", model={"max_position_embeddings": 64}, seq_len=128))
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
    generated_tokenizer(root, sentences=1500, validation_lines=20, name="tok")
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


# --------------------------------------------------------------------------- the loader, the loop, checkpoints

TINY_MODEL = dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64)
VOCAB = pretrain.Vocab(100, 0, 4, SPECIALS)


def open_blocks(folder):
    meta = read_meta(folder)
    return meta, {split: open_split(folder, split, meta) for split in ("train", "validation")}


def small_settings(**changes):
    return Settings.from_config({**dict(preset=None, model=TINY_MODEL, seq_len=16, epochs=2, batch_size=8,
                                        learning_rate=2e-3, log_every_steps=5, seed=3), **changes})


def make_trainer(folder, checkpoint_dir, **changes):
    meta, blocks = open_blocks(folder)
    return pretrain.Pretrainer(small_settings(**changes), vocab=VOCAB, blocks=blocks, meta=meta, device="cpu",
                               checkpoint_dir=str(checkpoint_dir))


class StopAfter(dict):
    """A stop flag that turns on after `n` checks (one check per optimizer step)."""

    def __init__(self, n):
        super().__init__(stop=False)
        self.left = n

    def __getitem__(self, key):
        self.left -= 1
        return self.left <= 0


@pytest.mark.parametrize("vocab_size", [100, 70000])  # uint16 and uint32 files
def test_memory_mapped_and_resident_loaders_give_the_seeded_batches(tmp_path, vocab_size):
    folder = random_block_folder(tmp_path, train_blocks=97, validation_blocks=3, vocab_size=vocab_size)
    _, blocks = open_blocks(folder)
    assert isinstance(blocks["train"], np.memmap)
    common = dict(device=torch.device("cpu"), seed=4, batch_size=4, world=2, rank=1, grad_accum=3)
    resident = block_loader.BlockLoader(blocks["train"], resident=True, **common)
    mapped = block_loader.BlockLoader(blocks["train"], resident=False, prefetch=True, **common)
    everything = torch.from_numpy(np.asarray(blocks["train"], dtype=np.int64))
    assert resident.steps_per_epoch == mapped.steps_per_epoch == 97 // 24
    for epoch in range(2):
        # The order the loop had before memory maps: randperm seeded by seed * 1000 + epoch.
        order = torch.randperm(97, generator=torch.Generator().manual_seed(4 * 1000 + epoch))
        for step in range(resident.steps_per_epoch):
            for micro in range(3):
                start = ((step * 3 + micro) * 2 + 1) * 4
                expected = everything[order[start : start + 4]]
                assert torch.equal(resident.batch(epoch, step, micro), expected)
                got = mapped.batch(epoch, step, micro)
                assert got.dtype == torch.int64 and torch.equal(got, expected)
    mapped.close()


def test_gather_rows_reads_sorted_but_keeps_the_batch_order():
    blocks = np.arange(40, dtype=np.uint16).reshape(10, 4)
    index = np.array([7, 2, 9, 0])
    assert np.array_equal(block_loader.gather_rows(blocks, index), blocks[index].astype(np.int64))


class RecordingBlocks:
    """Wraps a memory map and records what is read from it."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.size = array.shape, array.size

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]


def test_start_up_reads_only_the_evaluated_validation_rows_and_no_training_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(block_loader, "RESIDENT_MAX_BYTES", 0)  # the large-corpus path
    meta, blocks = open_blocks(random_block_folder(tmp_path, train_blocks=400, validation_blocks=50))
    train, valid = RecordingBlocks(blocks["train"]), RecordingBlocks(blocks["validation"])
    trainer = pretrain.Pretrainer(small_settings(max_eval_blocks=7), vocab=VOCAB,
                                  blocks={"train": train, "validation": valid}, meta=meta, device="cpu",
                                  checkpoint_dir=str(tmp_path / "ck"))
    assert not trainer.loader.resident
    assert train.reads == [] and valid.reads == [slice(None, 7)]
    trainer.optimizer_step(0, 3)
    assert len(train.reads) == 1 and len(train.reads[0]) == 8  # one batch of rows, nothing more


def test_resume_reads_on_from_the_saved_batch_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setattr(block_loader, "RESIDENT_MAX_BYTES", 0)
    folder = random_block_folder(tmp_path / "blocks", train_blocks=120, validation_blocks=10)
    reads = []
    original = pretrain.BlockLoader.read
    monkeypatch.setattr(pretrain.BlockLoader, "read", lambda self, *key: reads.append(key) or original(self, *key))

    reference = make_trainer(folder, tmp_path / "ref", grad_accum=2, epochs=3)
    reference.train({"stop": False})
    interrupted = make_trainer(folder, tmp_path / "ck", grad_accum=2, epochs=3)
    with pytest.raises(pretrain.StopRequested):
        interrupted.train(StopAfter(10))  # epoch 2 (index 1), step 3 of 7
    assert interrupted.progress.epoch == 1 and interrupted.progress.step_in_epoch == 3

    reads.clear()
    resumed = make_trainer(folder, tmp_path / "ck", grad_accum=2, epochs=3)
    assert resumed.resume()
    resumed.train({"stop": False})
    assert reads[0] == (1, 3, 0), "the first batch read after the resume is the saved position"
    assert all(key >= (1, 3, 0) for key in reads), "no earlier batch was read or replayed"
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    # Float64 loss sums are exact, so the epoch means do not depend on where a resume cut them.
    assert [r["train_loss"] for r in resumed.progress.rows] == [r["train_loss"] for r in reference.progress.rows]


def test_eval_every_steps_adds_fractional_epoch_rows(tmp_path):
    trainer = make_trainer(random_block_folder(tmp_path, train_blocks=80, validation_blocks=10),
                           tmp_path / "ck", eval_every_steps=4)
    trainer.train({"stop": False})
    rows = trainer.progress.rows
    assert [(r["epoch"], r["kind"]) for r in rows] == [
        (0.4, "step"), (0.8, "step"), (1, "epoch"), (1.2, "step"), (1.6, "step"), (2, "epoch")]
    assert all(r["time"].endswith("+00:00") for r in rows)
    write_rows_csv(tmp_path / "ppl.csv", rows, pretrain.CSV_COLUMNS)
    header = (tmp_path / "ppl.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == ["epoch", "step", "train_loss", "eval_loss", "perplexity", "tokens_per_s", "elapsed_s"]


def test_time_budget_stops_training_with_the_learning_rate_run_down(tmp_path):
    trainer = make_trainer(random_block_folder(tmp_path, train_blocks=80, validation_blocks=10),
                           tmp_path / "ck", time_budget=0.02, warmup_ratio=0.1)
    assert trainer.total_steps is None
    trainer.train({"stop": False})
    p = trainer.progress
    assert 1.2 <= p.train_s < 1.2 + 1.0
    assert p.global_step > trainer.steps_per_epoch, "the data is cycled through until the budget ends"
    assert trainer.scheduler.get_last_lr()[0] < 0.02 * 2e-3
    # The budget ends mid-epoch unless its last step happens to close an epoch (about 1 run in 10 here).
    ended_on_epoch = p.global_step % trainer.steps_per_epoch == 0
    assert p.rows[-1]["kind"] == ("epoch" if ended_on_epoch else "end") and p.rows[-1]["step"] == p.global_step
    assert trainer.stopped_by() == "time_budget"


def test_token_budget_is_a_reproducible_step_count(tmp_path):
    folder = random_block_folder(tmp_path, train_blocks=80, validation_blocks=10)
    runs = []
    for name in ("a", "b"):
        trainer = make_trainer(folder, tmp_path / name, token_budget=3000)
        trainer.train({"stop": False})
        runs.append(trainer)
    assert runs[0].total_steps == math.ceil(3000 / (8 * 16)) == runs[0].progress.global_step
    assert runs[0].scheduler.get_last_lr()[0] == 0.0
    assert [r["epoch"] for r in runs[0].progress.rows] == [1, 2, 2.4]
    assert runs[0].progress.rows == [{**r, "time": runs[0].progress.rows[i]["time"],
                                      "tokens_per_s": runs[0].progress.rows[i]["tokens_per_s"],
                                      "elapsed_s": runs[0].progress.rows[i]["elapsed_s"]}
                                     for i, r in enumerate(runs[1].progress.rows)]


def test_warmup_then_decay_shape():
    assert pretrain.warmup_then_decay(0.0, 0.1) == 0.0
    assert pretrain.warmup_then_decay(0.05, 0.1) == pytest.approx(0.5)
    assert pretrain.warmup_then_decay(0.1, 0.1) == pytest.approx(1.0)
    assert pretrain.warmup_then_decay(0.55, 0.1) == pytest.approx(0.5)
    assert pretrain.warmup_then_decay(1.3, 0.1) == 0.0


def test_corrupt_checkpoint_and_leftover_tmp_are_set_aside_and_training_starts_fresh(tmp_path, caplog):
    folder = random_block_folder(tmp_path / "blocks", train_blocks=40, validation_blocks=4)
    checkpoints = tmp_path / "pretrain" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.pt").write_bytes(b"PK\x03\x04 truncated zip")
    (checkpoints / "last.tmp").write_bytes(b"half a checkpoint")
    trainer = make_trainer(folder, checkpoints)
    with caplog.at_level(logging.WARNING):
        assert not trainer.resume()
    assert not (checkpoints / "last.pt").exists() and not (checkpoints / "last.tmp").exists()
    kept = list((tmp_path / "pretrain" / "stale-checkpoints").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == b"PK\x03\x04 truncated zip"
    assert "cannot be read" in caplog.text and str(kept[0]) in caplog.text and "last.tmp" in caplog.text


def test_checkpoints_load_with_weights_only_and_code_in_a_pickle_is_refused(tmp_path):
    folder = random_block_folder(tmp_path / "blocks", train_blocks=40, validation_blocks=4)
    checkpoints = tmp_path / "ck"
    trainer = make_trainer(folder, checkpoints)
    with pytest.raises(pretrain.StopRequested):
        trainer.train(StopAfter(2))
    state = torch.load(checkpoints / "last.pt", weights_only=True)  # plain tensors and values only
    assert state["progress"]["global_step"] == 2 and state["threads"] == torch.get_num_threads()
    torch.save({**state, "hook": PurePosixPath("x")}, checkpoints / "last.pt")  # not a plain value
    assert not make_trainer(folder, checkpoints).resume()
    assert len(list((tmp_path / "stale-checkpoints").iterdir())) == 1


def test_a_checkpoint_with_a_progress_record_of_another_layout_is_set_aside(tmp_path, caplog):
    folder = random_block_folder(tmp_path / "blocks", train_blocks=40, validation_blocks=4)
    checkpoints = tmp_path / "ck"
    with pytest.raises(pretrain.StopRequested):
        make_trainer(folder, checkpoints).train(StopAfter(2))
    state = torch.load(checkpoints / "last.pt", weights_only=True)
    assert state["progress_format"] == PROGRESS_FORMAT
    del state["progress_format"]  # as the checkpoints of the record kept per stage were written
    torch.save(state, checkpoints / "last.pt")
    trainer = make_trainer(folder, checkpoints)
    with caplog.at_level(logging.WARNING):
        assert not trainer.resume()
    assert trainer.progress.global_step == 0 and "another layout" in caplog.text
    assert len(list((tmp_path / "stale-checkpoints").iterdir())) == 1


def test_resume_with_another_thread_count_warns(tmp_path, caplog, monkeypatch):
    folder = random_block_folder(tmp_path / "blocks", train_blocks=40, validation_blocks=4)
    trainer = make_trainer(folder, tmp_path / "ck")
    with pytest.raises(pretrain.StopRequested):
        trainer.train(StopAfter(2))
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    with caplog.at_level(logging.WARNING):
        assert make_trainer(folder, tmp_path / "ck").resume()
    assert f"with {threads} torch threads, this one has 7" in caplog.text
    assert "bit for bit only with the same thread count" in caplog.text


def test_perplexity_plot_has_integer_epochs_and_plain_log_labels():
    rows = [{"epoch": e, "perplexity": p, "kind": "epoch"} for e, p in ((1, 80.0), (2, 55.0), (3, 41.0))]
    fig = pretrain.perplexity_figure(rows)
    fig.canvas.draw()
    ax = fig.axes[0]
    xticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    assert all(float(t).is_integer() for t in xticks)
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels()]
    assert any(label in ("50", "30") for label in labels)
    assert not any("times" in label or "^" in label for label in labels), labels
    narrow = pretrain.perplexity_figure([{**rows[0], "perplexity": 131.4}, {**rows[1], "perplexity": 124.7}])
    narrow.canvas.draw()
    assert any(t.get_text() for t in narrow.axes[0].get_yticklabels(minor=True)), "a narrow range still has labels"


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(random_block_folder(tmp_path, train_blocks=80, validation_blocks=10),
                           tmp_path / "ck", eval_every_steps=5)
    trainer.tracker = pretrain.Tracker("pretrain", tmp_path / "tb")
    trainer.train({"stop": False})
    trainer.tracker.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"pretrain/loss", "pretrain/lr", "pretrain/tokens_per_s", "pretrain/eval_loss",
            "pretrain/perplexity"} <= set(tags)
    assert [e.step for e in events.Scalars("pretrain/loss")] == [5, 10, 15, 20]
    perplexities = [e.value for e in events.Scalars("pretrain/perplexity")]
    assert perplexities == pytest.approx([r["perplexity"] for r in trainer.progress.rows])


class RecordingTracker:
    def __init__(self):
        self.lines, self.scalar_steps = [], []

    def progress(self, step, total, **fields):
        self.lines.append({"step": step, "total": total, **fields})

    def scalars(self, step, **values):
        self.scalar_steps.append((step, sorted(values)))


def test_progress_lines_hold_the_mean_micro_batch_loss_since_the_previous_line(tmp_path):
    """An epoch's end folds the loss sum into the progress record between two lines: the second
    line still covers its own steps only."""
    trainer = make_trainer(random_block_folder(tmp_path, train_blocks=80, validation_blocks=10),
                           tmp_path / "ck", grad_accum=2)  # 5 steps an epoch, a line every 5 steps
    trainer.tracker, step_losses = RecordingTracker(), []
    forward_backward = trainer.forward_backward

    def recorded(micro_batches):
        loss = forward_backward(micro_batches)
        step_losses.append(loss.item())
        return loss

    trainer.forward_backward = recorded
    trainer.train({"stop": False})
    lines = trainer.tracker.lines
    assert [(line["step"], line["total"], line["label"]) for line in lines] == [(5, 10, "epoch 1"), (10, 10, "epoch 2")]
    for line, losses in zip(lines, (step_losses[:5], step_losses[5:])):
        assert line["loss"] == pytest.approx(sum(losses) / (len(losses) * 2))
        assert isinstance(line["tokens_per_s"], int) and line["tokens_per_s"] > 0
    assert (5, ["eval_loss", "perplexity"]) in trainer.tracker.scalar_steps
    assert (10, ["loss", "lr", "tokens_per_s"]) in trainer.tracker.scalar_steps
    assert [r["train_loss"] for r in trainer.progress.rows] == pytest.approx(
        [sum(step_losses[:5]) / 10, sum(step_losses[5:]) / 10])


def test_time_budget_schedule_clock_starts_after_the_compilation_steps(tmp_path):
    trainer = make_trainer(random_block_folder(tmp_path, train_blocks=40, validation_blocks=4), tmp_path / "ck",
                           time_budget=1)
    assert trainer._budget_fraction(30.0, 1) == 0.0  # a 30 s torch.compile inside the first step
    assert trainer._budget_fraction(31.0, 3) == 0.0 and trainer.progress.schedule_origin_s == 31.0
    assert trainer._budget_fraction(45.5, 50) == pytest.approx(0.5)
    assert trainer._budget_fraction(60.0, 90) == 1.0
