"""Tiny random-weight encoders of every family a baseline can be, each saved with save_pretrained
beside a tokenizer of its own kind, trained here with `tokenizers` on a few KB of generated text:

WordPiece for BERT, DistilBERT, ELECTRA and SqueezeBERT; byte-level BPE for RoBERTa and ModernBERT;
SentencePiece-style Unigram for XLM-RoBERTa, ALBERT and DeBERTa-v3. The vocabulary goes into the
family's own transformers tokenizer class, which sets the family's normaliser, pre-tokenizer,
special tokens and pair template (RoBERTa: `<s> a </s></s> b </s>`), as a Hub checkpoint has them.
Nothing is downloaded. Two layers, hidden 32; the model is saved with its pretraining head.

`family_model(name, root)` builds one folder (once per `root` and name in a test run).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2", "albert", "squeezebert",
            "modernbert")
# Positions for max_length up to 128 (RoBERTa and XLM-R count from pad id + 1).
MAX_LENGTH = 128
HIDDEN, LAYERS, HEADS, FEED_FORWARD = 32, 2, 2, 64
VOCAB_SIZE = 400
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def corpus_lines() -> list[str]:
    """A few KB of the generated world's text (the words of the generated SST-2 and SQuAD), with
    capitals and punctuation so that cased and byte-level tokenizers see them."""
    from bertflow.synthetic import generate_corpus
    from bertflow.synthetic_tasks import generate_squad, generate_sst2

    lines = generate_corpus(300, seed=1)
    lines += [sentence for sentence, _ in generate_sst2(60, seed=2)]
    for article in generate_squad(4, seed=3)["data"]:
        for paragraph in article["paragraphs"]:
            lines.append(paragraph["context"])
            lines += [qa["question"] for qa in paragraph["qas"]]
    return lines + [line.capitalize() + " !" for line in lines[:100]]


# ----------------------------------------------------------------------------- tokenizers


def wordpiece_vocab(specials: list[str], lowercase: bool = True) -> dict[str, int]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus_lines(), trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=specials, min_frequency=1))
    return tokenizer.get_vocab()


def byte_bpe(specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a byte-level BPE (GPT-2 / RoBERTa style: a leading space is part
    of the word's first token)."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(corpus_lines(), trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=specials, min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def unigram_vocab(specials: list[str], lowercase: bool = False) -> list[tuple[str, float]]:
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
    tokenizer.train_from_iterator(corpus_lines(), trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=specials, unk_token=unk))
    return [tuple(piece) for piece in json.loads(tokenizer.to_str())["model"]["vocab"]]


def modernbert_tokenizer():
    """ModernBERT's kind: byte-level BPE with BERT's special tokens and [CLS] a [SEP] b [SEP]."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    vocab, merges = byte_bpe(specials)
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


def family_tokenizer(family: str):
    import transformers as tf

    if family in ("bert", "distilbert", "electra", "squeezebert"):
        cls = {"bert": tf.BertTokenizer, "distilbert": tf.DistilBertTokenizer, "electra": tf.BertTokenizer,
               "squeezebert": tf.SqueezeBertTokenizer}[family]
        return cls(vocab=wordpiece_vocab(BERT_SPECIALS))
    if family == "roberta":
        vocab, merges = byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        return tf.RobertaTokenizer(vocab=vocab, merges=merges)
    if family == "xlm-roberta":
        return tf.XLMRobertaTokenizer(vocab=unigram_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    if family == "albert":
        return tf.AlbertTokenizer(vocab=unigram_vocab(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], lowercase=True))
    if family == "deberta-v2":
        return tf.DebertaV2Tokenizer(vocab=unigram_vocab(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]))
    if family == "modernbert":
        return modernbert_tokenizer()
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


# ----------------------------------------------------------------------------- models


def family_config(family: str, tokenizer):
    """The family's transformers config at tiny size, its special-token ids from `tokenizer`."""
    import transformers as tf

    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    bert_like = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                     intermediate_size=FEED_FORWARD, max_position_embeddings=MAX_LENGTH, **ids)
    if family == "bert":
        return tf.BertConfig(**bert_like)
    if family == "distilbert":
        return tf.DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FEED_FORWARD,
                                   max_position_embeddings=MAX_LENGTH, **ids)
    if family in ("roberta", "xlm-roberta"):
        cls = tf.RobertaConfig if family == "roberta" else tf.XLMRobertaConfig
        return cls(**{**bert_like, "max_position_embeddings": MAX_LENGTH + tokenizer.pad_token_id + 1},
                   type_vocab_size=1, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    if family == "electra":
        return tf.ElectraConfig(**bert_like, embedding_size=16)  # factorised: embeddings_project 16 -> 32
    if family == "deberta-v2":  # DeBERTa-v3's layout: relative positions only, no token types
        return tf.DebertaV2Config(**bert_like, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                  position_buckets=16, max_relative_positions=-1, position_biased_input=False,
                                  type_vocab_size=0, norm_rel_ebd="layer_norm", share_att_key=True)
    if family == "albert":
        return tf.AlbertConfig(**bert_like, embedding_size=16)
    if family == "squeezebert":
        return tf.SqueezeBertConfig(**bert_like, embedding_size=HIDDEN, q_groups=2, k_groups=2, v_groups=2,
                                    post_attention_groups=2, intermediate_groups=2, output_groups=2)
    if family == "modernbert":
        return tf.ModernBertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                   intermediate_size=FEED_FORWARD, max_position_embeddings=MAX_LENGTH,
                                   global_attn_every_n_layers=2, local_attention=16, **ids,
                                   cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                                   bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def pretraining_model(config):
    """The model as a Hub checkpoint of its family holds it: ELECTRA's discriminator, else the MLM."""
    import transformers as tf

    if config.model_type == "electra":
        return tf.ElectraForPreTraining(config)
    return tf.AutoModelForMaskedLM.from_config(config)


@lru_cache(maxsize=None)
def family_model(family: str, root: str, seed: int = 0) -> str:
    """`root`/`family`: a saved tiny model and its tokenizer (built once per test run)."""
    import torch

    folder = Path(root, family)
    tokenizer = family_tokenizer(family)
    torch.manual_seed(seed)
    model = pretraining_model(family_config(family, tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
