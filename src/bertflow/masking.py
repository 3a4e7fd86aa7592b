"""BERT masked-LM masking with a fixed number of predictions per block.

Like the original BERT (`max_predictions_per_seq`), every block gets exactly
k = round(seq_len * mlm_probability) masked positions, chosen uniformly among its
non-special tokens, then 80% -> [MASK], 10% -> random token, 10% -> unchanged, as in
transformers' DataCollatorForLanguageModeling. The expected masking rate is the same as the
collator's per-token coin flips, but the shapes are static: the MLM head runs on exactly
B x k positions, no boolean indexing forces a host sync, and torch.compile sees one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskedBatch:
    inputs: torch.Tensor  # [B, L] ids with masks applied
    positions: torch.Tensor  # [B, k] masked positions
    targets: torch.Tensor  # [B, k] original ids at those positions


class Masker:
    def __init__(self, *, seq_len: int, mlm_probability: float, mask_id: int, vocab_size: int, special_ids):
        self.k = max(1, round(seq_len * mlm_probability))
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.special_ids = torch.tensor(sorted(special_ids), dtype=torch.long)
        self._special_on = {}  # device -> special ids there (no host-to-device copy per batch)

    def __call__(self, ids: torch.Tensor, generator: torch.Generator) -> MaskedBatch:
        device = ids.device
        scores = torch.rand(ids.shape, generator=generator, device=device)
        if device not in self._special_on:
            self._special_on[device] = self.special_ids.to(device)
        is_special = torch.isin(ids, self._special_on[device])
        scores = scores.masked_fill(is_special, -1.0)  # specials are chosen only if a row runs out
        positions = scores.topk(self.k, dim=1).indices
        targets = ids.gather(1, positions)
        roll = torch.rand(positions.shape, generator=generator, device=device)
        random_ids = torch.randint(self.vocab_size, positions.shape, generator=generator, device=device)
        replacement = torch.where(roll < 0.8, torch.full_like(targets, self.mask_id), targets)
        replacement = torch.where((roll >= 0.8) & (roll < 0.9), random_ids, replacement)
        inputs = ids.scatter(1, positions, replacement)
        return MaskedBatch(inputs=inputs, positions=positions, targets=targets)


def fixed_eval_masks(blocks: torch.Tensor, masker: Masker, seed: int, chunk: int = 512) -> MaskedBatch:
    """Masks for the validation blocks drawn once from `seed`: identical every epoch and run."""
    generator = torch.Generator().manual_seed(seed)
    parts = [masker(blocks[i : i + chunk], generator) for i in range(0, len(blocks), chunk)]
    return MaskedBatch(
        inputs=torch.cat([p.inputs for p in parts]),
        positions=torch.cat([p.positions for p in parts]),
        targets=torch.cat([p.targets for p in parts]),
    )
