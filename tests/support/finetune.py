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


def generated_task_files(root: Path, *, sst2_examples: tuple[int, int] = (96, 40),
                         squad_articles: tuple[int, int] = (6, 3)) -> Path:
    """Generated SST-2 (train.tsv, validation.tsv) and SQuAD (train.json, validation.json) in `root`;
    the sizes are (train, validation)."""
    from bertflow.task_data import prepare_squad, prepare_text_task
    from bertflow.tasks import GLUE_TASKS

    root.mkdir(parents=True, exist_ok=True)
    prepare_text_task(GLUE_TASKS["sst2"], source="generated",
                      generated={"train_examples": sst2_examples[0], "validation_examples": sst2_examples[1], "seed": 3},
                      out_train=str(root / "train.tsv"), out_validation=str(root / "validation.tsv"))
    prepare_squad(source="generated",
                  generated={"train_articles": squad_articles[0], "validation_articles": squad_articles[1], "seed": 5},
                  out_train=str(root / "train.json"), out_validation=str(root / "validation.json"))
    return root
