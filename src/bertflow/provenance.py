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


def environment_info() -> dict:
    """Versions, device and host: attach this to every JSON a stage writes."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
