"""A tiny pretrained-looking model folder for fine-tuning tests (until results/pretrain/model exists)."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_model(root: Path, *, vocab_size: int = 300, hidden: int = 32, seed: int = 0) -> str:
    """WordPiece tokenizer on the generated corpus + a randomly initialised 1-layer BertForMaskedLM."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from bertflow.synthetic import generate_corpus
    from bertflow.tokenizer import train_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    text = root / "text.txt"
    text.write_text("\n".join(generate_corpus(1000, seed=1)), encoding="utf-8")
    tokenizer = train_tokenizer(
        train_file=str(text), validation_file=str(text), out_dir=str(root / "model"),
        out_report=str(root / "tokenizer.json"), vocab_size=vocab_size, lowercase=True, min_frequency=1,
        special_tokens=SPECIAL_TOKENS, model_max_length=512,
    )
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * hidden)
    BertForMaskedLM(config).save_pretrained(root / "model")
    return str(root / "model")
