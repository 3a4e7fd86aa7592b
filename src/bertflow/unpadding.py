"""An encoder of BERT's layer layout on the batch's real tokens only ("unpadding", as MosaicBERT's
encoder): BERT, RoBERTa, XLM-RoBERTa and ELECTRA (bertflow.checks.UNPADDED_MODEL_TYPES).

Dynamic padding cuts a batch to its longest row, but the rest of the batch is still padded to it:
a batch of 32 SST-2 sentences (12 tokens on average) padded to its longest (~42) spends about 70%
of every linear layer, layer norm and dropout on padding, and the linear layers are most of a
step. Here the embeddings, every linear layer, layer norm and dropout run on the real tokens
(N x hidden); only attention itself sees the padded batch, where a key mask excludes the padding,
or, on CPU for wide batches, attends row by row over each row's own tokens.

A real token's hidden states are the same as in transformers' padded forward (padding takes no
part in them), up to float rounding. Padding positions come back as zeros, so a per-token head
scores them with its bias alone (the SQuAD stage leaves padding out of its loss and its answers).
The dropout masks are drawn over other shapes, so a training run takes a different random path
than the padded forward with the same seed.

`pooled_only` (sequence classification, whose head reads the [CLS] row only): the last layer
computes keys and values for every token but its query, attention output and feed-forward for the
[CLS] row only, and the model's `last_hidden_state` is that row alone (batch x 1 x hidden).

The weights are transformers' own modules, untouched: `unpad_encoder(model)` swaps the base
model's forward on this one model instance and `restore_encoder(model)` gives it back. Each family's
own embeddings module runs, given the position ids its padded forward would use (RoBERTa's count
from pad_token_id + 1 over the non-pad tokens), and ELECTRA's `embeddings_project` follows it when
its embeddings are narrower than its layers.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


# On CPU, batches at least this wide attend row by row, over each row's own tokens: SQuAD's
# 384-token windows hold ~165 real tokens on average, and attention over the padded batch then took
# about 40% of a step (a tiny-model step 143 ms row by row, 235 ms padded). Short rows (SST-2) lose more to the
# per-call overhead than they save (24 vs 23 ms). Probe: docs/results/cpu-finetune-bench/
# row_attention_probe.py. A GPU takes the padded batch in one kernel.
ROW_ATTENTION_MIN_WIDTH = 128


class Unpadding:
    """Where a batch's real tokens are: moves (batch, length, ...) tensors to (tokens, ...) and back.
    The unpadded order is row by row, so each row's tokens are consecutive (`row_lengths` of them)."""

    def __init__(self, attention_mask: torch.Tensor):
        self.shape = tuple(attention_mask.shape)
        self.index = attention_mask.flatten().nonzero().squeeze(1)
        self.key_mask = attention_mask.bool()[:, None, None, :]  # SDPA: True = attend
        by_rows = attention_mask.device.type == "cpu" and self.shape[1] >= ROW_ATTENTION_MIN_WIDTH
        self.row_lengths = attention_mask.sum(1).tolist() if by_rows else None

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        return padded.flatten(0, 1).index_select(0, self.index)

    def pad(self, tokens: torch.Tensor) -> torch.Tensor:
        rows = tokens.new_zeros((self.shape[0] * self.shape[1], *tokens.shape[1:]))
        return rows.index_copy(0, self.index, tokens).view(*self.shape, *tokens.shape[1:])


def supports_unpadding(model) -> bool:
    """An encoder of a family this serves, whose base model has the modules it reads."""
    from .checks import unpadding_refusal

    base = model.base_model
    return (unpadding_refusal(model.config.to_dict()) is None and hasattr(base, "embeddings")
            and hasattr(base, "encoder") and hasattr(base.encoder, "layer"))


def unpad_encoder(model, pooled_only: bool = False) -> None:
    """Make `model.base_model` run unpadded; its weights and state dict are unchanged."""
    if not supports_unpadding(model):
        from .checks import unpadding_refusal

        raise ValueError(f"unpadding cannot serve {type(model.base_model).__name__}: "
                         f"{unpadding_refusal(model.config.to_dict()) or 'not an encoder of BERT layers'}")
    bert = model.base_model
    bert.forward = functools.partial(unpadded_forward, bert, type(bert).forward.__get__(bert), pooled_only)


def restore_encoder(model) -> None:
    vars(model.base_model).pop("forward", None)


def unpadded_forward(bert, padded_forward, pooled_only: bool, input_ids=None, attention_mask=None,
                     token_type_ids=None, position_ids=None, inputs_embeds=None, **kwargs):
    """The base model's forward for token ids with an attention mask; any other call (no mask,
    embeddings as input, attentions or hidden states asked for) goes to transformers' forward."""
    from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

    plain = (input_ids is None or attention_mask is None or position_ids is not None or inputs_embeds is not None
             or kwargs.get("output_attentions") or kwargs.get("output_hidden_states")
             or (pooled_only and not bool(attention_mask[:, 0].all())))
    if plain:
        return padded_forward(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                              position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
    batch = Unpadding(attention_mask)
    positions = padded_position_ids(bert.embeddings, input_ids)
    token_types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    hidden = bert.embeddings(input_ids=batch.unpad(input_ids)[None], position_ids=batch.unpad(positions)[None],
                             token_type_ids=batch.unpad(token_types)[None])[0]
    if hasattr(bert, "embeddings_project"):  # ELECTRA with embedding_size != hidden_size
        hidden = bert.embeddings_project(hidden)
    layers = list(bert.encoder.layer)
    for layer in layers[:-1] if pooled_only else layers:
        hidden = layer_forward(layer, hidden, batch)
    if pooled_only:
        lengths = attention_mask.sum(1)
        first_tokens = lengths.cumsum(0) - lengths  # each row's [CLS] among the unpadded tokens
        sequence = layer_forward(layers[-1], hidden, batch, queries=first_tokens)[:, None]
    else:
        sequence = batch.pad(hidden)
    pooler = getattr(bert, "pooler", None)  # ELECTRA has none; RoBERTa's task models are built without
    pooled = pooler(sequence) if pooler is not None else None
    return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=sequence, pooler_output=pooled)


def padded_position_ids(embeddings, input_ids: torch.Tensor) -> torch.Tensor:
    """The position ids the family's padded forward gives the batch: RoBERTa / XLM-R count from
    padding_idx + 1 over the non-pad tokens, BERT and ELECTRA number the columns."""
    if hasattr(embeddings, "create_position_ids_from_input_ids"):
        return embeddings.create_position_ids_from_input_ids(input_ids, embeddings.padding_idx)
    return torch.arange(input_ids.shape[1], device=input_ids.device).expand(input_ids.shape)


def layer_forward(layer, hidden: torch.Tensor, batch: Unpadding, queries: torch.Tensor | None = None) -> torch.Tensor:
    """One transformers layer of BERT's layout on unpadded tokens (N x hidden): self-attention over each row's
    real tokens, then the feed-forward block. `queries`: compute the output for these tokens only."""
    query_input = hidden if queries is None else hidden.index_select(0, queries)
    if queries is None and batch.row_lengths is not None:
        context = attend_by_rows(layer.attention.self, hidden, batch.row_lengths)
    else:
        context = attend_padded(layer.attention.self, query_input, hidden, batch, queries is None)
    attended = layer.attention.output(context, query_input)
    return layer.output(layer.intermediate(attended), attended)


def attend_padded(attention, query_input: torch.Tensor, hidden: torch.Tensor, batch: Unpadding,
                  every_token: bool) -> torch.Tensor:
    """Self-attention on the padded batch with a key mask; queries for every token or one per row."""
    rows, heads, head_size = batch.shape[0], attention.num_attention_heads, attention.attention_head_size

    def split_heads(tokens, padded):  # (tokens, hidden) -> (rows, heads, length or 1, head size)
        tokens = batch.pad(tokens) if padded else tokens.view(rows, 1, -1)
        return tokens.view(rows, tokens.shape[1], heads, head_size).transpose(1, 2)

    context = F.scaled_dot_product_attention(
        split_heads(attention.query(query_input), every_token),
        split_heads(attention.key(hidden), True), split_heads(attention.value(hidden), True),
        attn_mask=batch.key_mask, dropout_p=attention.dropout.p if attention.training else 0.0,
        scale=attention.scaling)
    context = context.transpose(1, 2).flatten(2)
    return batch.unpad(context) if every_token else context[:, 0]


def attend_by_rows(attention, hidden: torch.Tensor, row_lengths: list[int]) -> torch.Tensor:
    """Self-attention of each row over its own tokens, one call per row: no padding, no mask."""
    heads, head_size = attention.num_attention_heads, attention.attention_head_size
    projected = [project(hidden).view(-1, heads, head_size).transpose(0, 1).split(row_lengths, 1)
                 for project in (attention.query, attention.key, attention.value)]  # per row: heads x n x size
    dropout = attention.dropout.p if attention.training else 0.0
    context = [F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=attention.scaling)
               for q, k, v in zip(*projected)]
    return torch.cat(context, 1).transpose(0, 1).flatten(1)
