"""Small file helpers: atomic writes so that a killed stage never leaves a half-written file, with
the umask's permissions and a plain message when the disk fills up; and readers whose errors name
the file, the line and byte, and what to do (for text that is not UTF-8 or JSON that is cut off)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, ResourceError


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give `path` (a file, or a folder and everything in it) the permissions a new file gets under
    the umask, as `cp` would: temp-file helpers (mkstemp, safetensors) create files readable by
    the owner only, which group members of a shared project folder could not read. Permissions
    are only added, never taken away."""
    path = Path(path)
    allowed = {False: 0o666 & ~current_umask(), True: 0o777 & ~current_umask()}
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if item.is_symlink() or not item.exists():
            continue
        mode = item.stat().st_mode & 0o7777
        wanted = mode | allowed[item.is_dir()]
        if wanted != mode:
            item.chmod(wanted)


def write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with disk_full_guard(path, "the file"), os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        follow_umask(tmp)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


UTF8_FIX = "convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8 OLD > NEW`) and rerun"


def utf8_error(path: str | os.PathLike, what: str, data: bytes, err: UnicodeDecodeError,
               first_line: int = 1, offset: int = 0) -> DataError:
    """The DataError for bytes of `path` that are not UTF-8: the line, the byte in it and the file
    offset of the first bad byte. `data` holds the bytes from file offset `offset` (line `first_line`)."""
    line_start = data.rfind(b"\n", 0, err.start) + 1
    line = first_line + data.count(b"\n", 0, err.start)
    return DataError(
        f"{path}: {what} is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, byte "
        f"{err.start - line_start + 1} (file offset {offset + err.start}) is {err.reason}; {UTF8_FIX}")


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    return path


def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """The whole file as UTF-8 text; a file that is missing or not UTF-8 is a DataError naming it."""
    data = require_file(path, what).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise utf8_error(path, what, data, err) from None


def read_json(path: str | os.PathLike, what: str = "JSON file",
              fix: str = "the file is truncated or damaged: restore it or rerun the stage that wrote it") -> Any:
    """A JSON file's value; one that is missing, not UTF-8 or not valid JSON is a DataError that
    names it, the line and column, and says what to do (`fix`)."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: {what} is not valid JSON: {err.msg.removesuffix(' at')} at line {err.lineno}, column "
                        f"{err.colno}; {fix}") from None


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why a .safetensors file cannot be loaded, from its header alone (cheap enough for start-up
    checks): a file shorter or longer than the tensors its header describes was cut off in a
    download or copy, and safetensors itself would only say "incomplete metadata"."""
    path = Path(path)
    size = path.stat().st_size
    again = "download or copy the model again"
    with open(path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if size < 8 or header_len > size - 8:
            return f"{path}: {size:,} bytes, shorter than its own header; the file is truncated: {again}"
        header = handle.read(header_len)
    try:
        tensors = json.loads(header)
        end = max((t["data_offsets"][1] for name, t in tensors.items() if name != "__metadata__"), default=0)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, IndexError):
        return f"{path}: the safetensors header is not a valid tensor index; the file is damaged: {again}"
    expected = 8 + header_len + end
    if size != expected:
        return (f"{path}: {size:,} bytes, but its header describes {expected:,}; the file is "
                f"{'truncated' if size < expected else 'longer than its tensors'}: {again}")
    return None


def existing_part(path: Path) -> Path:
    """`path`, or its nearest parent that exists (the disk a file not yet written will go to)."""
    return path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))


def require_free_disk(path: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Fail before writing `what` when the file system holding `path` lacks the space."""
    path = Path(path)
    free = shutil.disk_usage(existing_part(path)).free
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


# torch.save reports a short write as a RuntimeError ("[enforce fail at inline_container.cc:672] .
# unexpected pos 576 vs 534") and safetensors as a SafetensorError, neither with an errno.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "os error 28", "unexpected pos ")


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and the errors it was raised from or during."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` (or an error it was raised from) is a write that ran out of disk space."""
    return any((isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS)
               or (isinstance(e, Exception) and any(text in str(e) for text in DISK_FULL_TEXTS)) for e in _chain(err))


def disk_full_error_of(err: BaseException, path: str | os.PathLike, what: str) -> ResourceError | None:
    """For a stage that failed with `err`: the disk-full error naming the file the error names (else
    `path`), or None when `err` is something else or already says it."""
    if isinstance(err, ResourceError) or not is_disk_full(err):
        return None
    named = next((e.filename for e in _chain(err) if isinstance(e, OSError) and e.filename), None)
    return disk_full_error(named or path, what)


def free_space(path: str | os.PathLike) -> str:
    return f"{shutil.disk_usage(existing_part(Path(path))).free / 2**20:,.1f} MiB free"


def disk_full_error(path: str | os.PathLike, what: str) -> ResourceError:
    """The one line for a write that filled the disk: the path, what was written, the free space."""
    return ResourceError(
        f"{path}: the disk filled up while writing {what} (No space left on device; {free_space(path)} there "
        "now); nothing half-written was kept: free space or point results_dir elsewhere, then rerun (training "
        "resumes from its last checkpoint)")


@contextlib.contextmanager
def disk_full_guard(path: str | os.PathLike, what: str):
    """Turn a write that runs out of disk space inside the block into a ResourceError naming `path`."""
    try:
        yield
    except Exception as err:
        full = disk_full_error_of(err, path, what)
        if full is None:
            raise
        raise full from err
