"""What produced a result: package versions, device and host, recorded in every stage's output.

Versions come from the installed packages' metadata, so recording them imports nothing. The device
(CUDA, GPU name, torch's thread count) is only recorded by stages that use torch: importing it just
to describe it costs a stage that never touches it about 2 s and 200 MiB.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from datetime import datetime, timezone

_PACKAGES = (
    "bertflow", "torch", "transformers", "tokenizers", "datasets",
    "huggingface_hub", "accelerate", "snakemake",
)


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict:
    """CUDA and thread figures from torch when the stage has imported it; otherwise only the CPU count."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"torch_imported": False, "cpu_count": os.cpu_count()}
    info = {"cuda_available": torch.cuda.is_available(), "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
    return info


def process_device(device) -> str:
    """This process' device, by name: "cpu", or "cuda:1 NVIDIA H100 80GB HBM3"."""
    torch = sys.modules["torch"]
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return device.type


def node_devices(device) -> list[dict]:
    """Every node of a launch with its host name and its processes' devices, in node order.

    A collective under torch.distributed: every rank calls it (each contributes its own device);
    outside a process group it describes this process alone. Nodes are told apart by torchrun's
    node rank (GROUP_RANK), not by host name: agents on one host are still separate nodes.
    """
    import torch.distributed as dist

    from .distributed import node_name

    mine = (int(os.environ.get("GROUP_RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), node_name(),
            process_device(device))
    everyone = [mine]
    if dist.is_available() and dist.is_initialized():
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
    nodes: dict[int, dict] = {}
    for node, _, host, name in sorted(everyone):
        nodes.setdefault(node, {"node_rank": node, "host": host, "devices": []})["devices"].append(name)
    return list(nodes.values())


def environment_info(nodes: list[dict] | None = None) -> dict:
    """Versions, device and host: attach this to every JSON a stage writes. `nodes`: what
    `node_devices` found, for a stage that ran across processes (the device entry is this node's)."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if nodes is not None:
        info["nodes"] = nodes
    return info
