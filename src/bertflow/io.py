"""Small file helpers: atomic writes so that a killed stage never leaves a half-written file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import DataError, ResourceError


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def require_free_disk(path: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Fail before writing `what` when the file system holding `path` lacks the space."""
    path = Path(path)
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise ResourceError(
            f"{path}: {what} needs about {needed_bytes / 2**20:.0f} MiB but only "
            f"{free / 2**20:.0f} MiB are free on that disk; free space or point the results elsewhere"
        )


# Arguments of from_pretrained that transformers 5 keeps in a tokenizer's init_kwargs and would write
# into tokenizer_config.json: they describe how this copy was loaded, not the tokenizer.
TOKENIZER_LOADER_FLAGS = ("is_local", "local_files_only", "cache_dir", "revision", "token", "_from_auto",
                          "_commit_hash", "trust_remote_code", "force_download", "proxies", "subfolder")


def save_tokenizer(tokenizer, out_dir: str | os.PathLike) -> None:
    """tokenizer.save_pretrained(out_dir) without the loader flags in tokenizer_config.json."""
    for flag in TOKENIZER_LOADER_FLAGS:
        tokenizer.init_kwargs.pop(flag, None)
    tokenizer.save_pretrained(out_dir)


@contextlib.contextmanager
def disk_full_guard(folder: str | os.PathLike, what: str):
    """Turn "No space left on device" while writing `what` into a ResourceError naming the folder."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ResourceError(
            f"{folder}: the disk filled up while writing {what} ({err.strerror}); nothing half-written "
            "was kept: free space or point results_dir elsewhere, then rerun"
        ) from err
