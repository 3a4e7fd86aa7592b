"""Optional vocabulary reduction for fine-tuning (`finetune.<task>.reduce_vocab`).

A task usually touches a fraction of the pretraining vocabulary. During fine-tuning the input
embedding keeps only the rows of tokens that occur in the task data (plus special tokens), and
inputs are re-indexed into it; before saving, the trained rows are written back into the full
matrix, so the saved model has the original vocabulary and unused rows are bit-for-bit the
pretrained ones.
"""

from __future__ import annotations

import torch
from torch import nn


class VocabReduction:
    def __init__(self, model: nn.Module, used_ids, special_ids):
        embedding = model.get_input_embeddings()
        self.model = model
        self.full_weight = embedding.weight.detach().clone()
        self.padding_idx = embedding.padding_idx  # BERT never updates the [PAD] row; keep it that way
        always = set(special_ids) | ({self.padding_idx} if self.padding_idx is not None else set())
        self.kept = torch.tensor(sorted({int(i) for i in used_ids} | always), dtype=torch.long)
        self.lookup = torch.zeros(self.full_weight.shape[0], dtype=torch.long)
        self.lookup[self.kept] = torch.arange(len(self.kept))
        self.total_parameters = sum(p.numel() for p in model.parameters())

    def apply(self) -> None:
        rows = self.full_weight[self.kept].clone()
        padding_idx = None if self.padding_idx is None else int(self.lookup[self.padding_idx])
        self.model.set_input_embeddings(nn.Embedding.from_pretrained(rows, freeze=False, padding_idx=padding_idx))

    def map_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lookup.to(input_ids.device)[input_ids]

    def restore(self) -> None:
        trained = self.model.get_input_embeddings().weight.detach()
        full = self.full_weight.to(trained.device, trained.dtype).clone()
        full[self.kept.to(trained.device)] = trained
        self.model.set_input_embeddings(nn.Embedding.from_pretrained(full, freeze=False, padding_idx=self.padding_idx))

    def stats(self) -> dict:
        vocab, hidden = self.full_weight.shape
        removed = (vocab - len(self.kept)) * hidden
        return {
            "vocab_full": vocab,
            "vocab_kept": len(self.kept),
            "vocab_reduction_pct": 100.0 * (1 - len(self.kept) / vocab),
            "model_size_reduction_pct": 100.0 * removed / self.total_parameters,
        }
