"""The pretraining loop a user writes today: transformers `Trainer` + `DataCollatorForLanguageModeling`,
as in examples/pytorch/language-modeling/run_mlm.py (pre-grouped blocks, default collator and
dataloader, `--bf16` on GPU), timed over a fixed number of steps on the same blocks as ours."""

from __future__ import annotations

import tempfile
import time

import torch


def vocab_tokenizer(vocab_size: int, directory: str):
    """A BERT tokenizer with `vocab_size` entries ([PAD]=0 ... [MASK]=4, then filler words)."""
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - 5)]
    path = f"{directory}/vocab.txt"
    with open(path, "w") as handle:
        handle.write("\n".join(words) + "\n")
    return BertTokenizerFast(vocab_file=path)


def trainer_steps(blocks: torch.Tensor, config, *, steps: int, batch_size: int, learning_rate: float = 5e-4,
                  bf16: bool, seed: int = 0, warmup_steps: int = 3) -> dict:
    from transformers import (BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainerCallback,
                              TrainingArguments)

    marks = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup_steps, warmup_steps + steps):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                    if state.global_step == warmup_steps:
                        torch.cuda.reset_peak_memory_stats()
                marks[state.global_step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = vocab_tokenizer(config.vocab_size, tmp)
        torch.manual_seed(seed)
        model = BertForMaskedLM(config)
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=batch_size,
                                 max_steps=warmup_steps + steps, learning_rate=learning_rate, bf16=bf16,
                                 save_strategy="no", report_to=[], logging_steps=10**6, seed=seed,
                                 disable_tqdm=True)
        dataset = [{"input_ids": row} for row in blocks.tolist()]
        trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[Clock()],
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15))
        result = trainer.train()
    wall = marks[warmup_steps + steps] - marks[warmup_steps]
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return {"tokens_per_s": steps * batch_size * blocks.shape[1] / wall, "peak_memory_bytes": peak,
            "final_loss": result.training_loss, "wall_s": wall,
            "attention": model.config._attn_implementation}
