"""Where and how a stage computes: the device, the precision, the Accelerator and bf16 autocast.

Shared by the training stages (pretrain, finetune), the inference benchmark, the launcher in
`bertflow.distributed` and the benchmarks in `benchmarks/`, so each resolves `auto` the
same way.
"""

from __future__ import annotations

import torch

from .errors import ResourceError


def resolve_device(requested: str) -> str:
    """`auto` -> cuda when a GPU is visible, else cpu; `cuda` without a GPU is an error, not a fallback."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ResourceError(
            "device: 'cuda' was requested but no GPU is visible (torch.cuda.is_available() is False); "
            "set device: auto or cpu, or run on a GPU node"
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_precision(precision: str, device: str) -> str:
    """`auto` -> bf16 on a GPU that supports it, else fp32."""
    if precision == "auto":
        return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def make_accelerator(device: str):
    """Accelerate places the model and wraps DDP; bf16 autocast is ours (see `autocast`), because
    Accelerate's mixed-precision setting is fixed once per process."""
    from accelerate import Accelerator

    return Accelerator(cpu=device == "cpu")


def autocast(device_type: str, precision: str):
    """bf16 autocast when `precision` is bf16, a no-op context otherwise."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
