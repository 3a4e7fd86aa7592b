"""BERT size presets (layers/hidden) as in Turc et al. 2019, "Well-Read Students Learn Better"."""

from __future__ import annotations

from .errors import ConfigError

# name: (layers, hidden). Heads = hidden / 64, feed-forward = 4 * hidden, as in the paper.
PRESETS: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
}


def architecture(preset: str | None, overrides: dict | None = None) -> dict:
    """BertConfig fields for `preset`, with explicit `overrides` taking precedence."""
    fields: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"pretrain.preset: unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        layers, hidden = PRESETS[preset]
        fields = {
            "num_hidden_layers": layers,
            "hidden_size": hidden,
            "num_attention_heads": max(1, hidden // 64),
            "intermediate_size": 4 * hidden,
        }
    fields.update({k: v for k, v in (overrides or {}).items() if v is not None})
    missing = {"num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"} - fields.keys()
    if missing:
        raise ConfigError(f"pretrain.model: without a preset these fields are required: {sorted(missing)}")
    if fields["hidden_size"] % fields["num_attention_heads"]:
        raise ConfigError(
            f"pretrain.model: hidden_size {fields['hidden_size']} is not divisible by "
            f"num_attention_heads {fields['num_attention_heads']}"
        )
    return fields
