"""Content digests of files: what the hub receipt, the feature cache and the checkpoint fingerprints
compare, so that a changed file is noticed by its bytes, not by its time stamp."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
