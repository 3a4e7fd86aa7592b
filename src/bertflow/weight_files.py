"""Saved weights read without loading them: the safetensors headers name every tensor and its shape."""

from __future__ import annotations

import json
from pathlib import Path


def safetensors_shapes(model_dir: str | Path) -> dict[str, list[int]] | None:
    """Name -> shape of every tensor in the folder's safetensors file(s), read from the headers only
    (no tensor data, no torch); None when the weights are in another format."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():  # sharded: the index names the file of every tensor
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (model_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    shapes = {}
    for file in files:
        with safe_open(str(model_dir / file), framework="numpy") as handle:
            for key in handle.keys():
                shapes[key] = handle.get_slice(key).get_shape()
    return shapes
