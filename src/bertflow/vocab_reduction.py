"""Optional vocabulary reduction for fine-tuning (`finetune.<task>.reduce_vocab`).

A task usually touches a fraction of the pretraining vocabulary. During fine-tuning the input
embedding keeps only the rows of tokens that occur in the task data (plus special tokens), and
inputs are re-indexed into it; before saving, the trained rows are written back into the full
matrix, so the saved model has the original vocabulary and unused rows are bit-for-bit the
pretrained ones.

Every family: the input embedding is the model's own (`get_input_embeddings`: ELECTRA's and
ALBERT's narrower factorised rows, DeBERTa's, ModernBERT's). An embeddings module that derives
position ids from the pad id (RoBERTa, XLM-R: positions are pad id + 1 + the count of non-pad
tokens so far) reads the original pad id, so the reduced table keeps every row up to it: the pad
id is then the same in both (RoBERTa's 1: two rows more at most).
"""

from __future__ import annotations

import torch
from torch import nn


def positions_from_pad_id(model: nn.Module) -> bool:
    """The model's embeddings number positions from the pad id (RoBERTa's create_position_ids_from_input_ids)."""
    embeddings = getattr(model.base_model, "embeddings", None)
    return hasattr(embeddings, "create_position_ids_from_input_ids")


class VocabReduction:
    def __init__(self, model: nn.Module, used_ids, special_ids):
        embedding = model.get_input_embeddings()
        self.model = model
        self.full_weight = embedding.weight.detach().clone()
        self.padding_idx = embedding.padding_idx  # BERT never updates the [PAD] row; keep it that way
        always = set(special_ids) | ({self.padding_idx} if self.padding_idx is not None else set())
        if self.padding_idx is not None and positions_from_pad_id(model):
            always |= set(range(self.padding_idx))
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
