"""Random-weight encoders of every family the workflow fine-tunes, each saved with save_pretrained
beside a tokenizer of its own kind, trained here with `tokenizers` on the text given (no downloads):

WordPiece for BERT, DistilBERT, ELECTRA and SqueezeBERT; byte-level BPE for RoBERTa and ModernBERT;
SentencePiece-style Unigram for XLM-RoBERTa, ALBERT and DeBERTa-v3. The vocabulary goes into the
family's own transformers tokenizer class, which sets the family's normaliser, pre-tokenizer,
special tokens and pair template (RoBERTa: `<s> a </s></s> b </s>`), as a Hub checkpoint has them.
The model is saved with its pretraining head (ELECTRA: the discriminator), at the `Shape` given.

`save_family_model(family, folder, lines, shape)` builds one folder; the tests' tiny models
(tests/support/families.py) and `benchmarks.finetune_bench --families` both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2", "albert", "squeezebert",
            "modernbert")
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class Shape:
    """One size for every family: BERT's four numbers, plus the few a family has of its own."""

    hidden: int
    layers: int
    heads: int
    feed_forward: int
    max_positions: int  # the longest max_length the model takes (RoBERTa and XLM-R add pad id + 1)
    embedding: int  # ELECTRA's and ALBERT's factorised embedding width
    position_buckets: int  # DeBERTa-v3's relative-position buckets
    local_attention: int  # ModernBERT's sliding window
    vocab_size: int  # tokenizer vocabulary trained
    vocab_rows: int = 0  # embedding rows, at least the tokenizer's (0: the tokenizer's)


def preset_shape(architecture: dict, max_positions: int, vocab_size: int, vocab_rows: int) -> Shape:
    """`Shape` of a bertflow.presets architecture (BertConfig fields); the family-only numbers
    scaled as the Hub's small checkpoints have them (embedding half the hidden width, DeBERTa-v3's
    buckets half the positions, ModernBERT's 128-token window)."""
    hidden = architecture["hidden_size"]
    return Shape(hidden=hidden, layers=architecture["num_hidden_layers"], heads=architecture["num_attention_heads"],
                 feed_forward=architecture["intermediate_size"], max_positions=max_positions,
                 embedding=max(16, hidden // 2), position_buckets=max_positions // 2, local_attention=128,
                 vocab_size=vocab_size, vocab_rows=vocab_rows)


# ----------------------------------------------------------------------------- tokenizers


def wordpiece_vocab(lines: list[str], vocab_size: int, specials: list[str], lowercase: bool = True) -> dict[str, int]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(lines, trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=specials, min_frequency=1))
    return tokenizer.get_vocab()


def byte_bpe(lines: list[str], vocab_size: int, specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a byte-level BPE (GPT-2 / RoBERTa style: a leading space is part
    of the word's first token)."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def unigram_vocab(lines: list[str], vocab_size: int, specials: list[str],
                  lowercase: bool = False) -> list[tuple[str, float]]:
    """(piece, log-probability) pairs of a SentencePiece-style Unigram with the `▁` word marker;
    the special tokens come first, in the family's id order."""
    import json

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                       pre_tokenizers.Metaspace(replacement="▁")])
    unk = next(token for token in specials if "unk" in token.lower())
    tokenizer.train_from_iterator(lines, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token=unk))
    return [tuple(piece) for piece in json.loads(tokenizer.to_str())["model"]["vocab"]]


def modernbert_tokenizer(lines: list[str], vocab_size: int):
    """ModernBERT's kind: byte-level BPE with BERT's special tokens and [CLS] a [SEP] b [SEP]."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    vocab, merges = byte_bpe(lines, vocab_size, specials)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "attention_mask"])


def family_tokenizer(family: str, lines: list[str], vocab_size: int):
    """The family's transformers tokenizer, its vocabulary (at most `vocab_size`) trained on `lines`."""
    import transformers as tf

    if family in ("bert", "distilbert", "electra", "squeezebert"):
        cls = {"bert": tf.BertTokenizer, "distilbert": tf.DistilBertTokenizer, "electra": tf.BertTokenizer,
               "squeezebert": tf.SqueezeBertTokenizer}[family]
        return cls(vocab=wordpiece_vocab(lines, vocab_size, BERT_SPECIALS))
    if family == "roberta":
        vocab, merges = byte_bpe(lines, vocab_size, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        return tf.RobertaTokenizer(vocab=vocab, merges=merges)
    if family == "xlm-roberta":
        return tf.XLMRobertaTokenizer(vocab=unigram_vocab(lines, vocab_size, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    if family == "albert":
        return tf.AlbertTokenizer(vocab=unigram_vocab(lines, vocab_size, ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
                                                      lowercase=True))
    if family == "deberta-v2":
        return tf.DebertaV2Tokenizer(vocab=unigram_vocab(lines, vocab_size, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]))
    if family == "modernbert":
        return modernbert_tokenizer(lines, vocab_size)
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


# ----------------------------------------------------------------------------- models


def family_config(family: str, tokenizer, shape: Shape):
    """The family's transformers config at `shape`, its special-token ids from `tokenizer`."""
    import transformers as tf

    ids = {"vocab_size": max(len(tokenizer), shape.vocab_rows), "pad_token_id": tokenizer.pad_token_id}
    bert_like = dict(hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                     intermediate_size=shape.feed_forward, max_position_embeddings=shape.max_positions, **ids)
    if family == "bert":
        return tf.BertConfig(**bert_like)
    if family == "distilbert":
        return tf.DistilBertConfig(dim=shape.hidden, n_layers=shape.layers, n_heads=shape.heads,
                                   hidden_dim=shape.feed_forward, max_position_embeddings=shape.max_positions, **ids)
    if family in ("roberta", "xlm-roberta"):
        cls = tf.RobertaConfig if family == "roberta" else tf.XLMRobertaConfig
        return cls(**{**bert_like, "max_position_embeddings": shape.max_positions + tokenizer.pad_token_id + 1},
                   type_vocab_size=1, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    if family == "electra":  # factorised: embeddings_project embedding -> hidden
        return tf.ElectraConfig(**bert_like, embedding_size=shape.embedding)
    if family == "deberta-v2":  # DeBERTa-v3's layout: relative positions only, no token types
        return tf.DebertaV2Config(**bert_like, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                  position_buckets=shape.position_buckets, max_relative_positions=-1,
                                  position_biased_input=False, type_vocab_size=0, norm_rel_ebd="layer_norm",
                                  share_att_key=True)
    if family == "albert":
        return tf.AlbertConfig(**bert_like, embedding_size=shape.embedding)
    if family == "squeezebert":
        return tf.SqueezeBertConfig(**bert_like, embedding_size=shape.hidden, q_groups=2, k_groups=2, v_groups=2,
                                    post_attention_groups=2, intermediate_groups=2, output_groups=2)
    if family == "modernbert":
        return tf.ModernBertConfig(hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                                   num_attention_heads=shape.heads, intermediate_size=shape.feed_forward,
                                   max_position_embeddings=shape.max_positions, global_attn_every_n_layers=2,
                                   local_attention=shape.local_attention, **ids,
                                   cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                                   bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def pretraining_model(config):
    """The model as a Hub checkpoint of its family holds it: ELECTRA's discriminator, else the MLM."""
    import transformers as tf

    if config.model_type == "electra":
        return tf.ElectraForPreTraining(config)
    return tf.AutoModelForMaskedLM.from_config(config)


def save_family_model(family: str, folder: str | Path, lines: list[str], shape: Shape, seed: int = 0) -> str:
    """`folder`: a randomly initialised `family` model of `shape` and its tokenizer trained on `lines`."""
    import torch

    tokenizer = family_tokenizer(family, lines, shape.vocab_size)
    torch.manual_seed(seed)
    model = pretraining_model(family_config(family, tokenizer, shape))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
