"""`python -m support.distributed SPEC.json`: a stage entry point (or a minimal DDP probe) under a
launcher, recording which rank writes where.

SPEC holds `_entry` (a module with `main(argv)`, or "probe"), `_watch` (a folder) and `_trace`
(a folder outside it); the other keys are the entry's own spec. An audit hook notes every file
opened for writing, renamed, created or removed under `_watch`, into `_trace/rank<R>.txt`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _is_write(event: str, args: tuple) -> bool:
    if event == "open":
        mode, flags = args[1], args[2]
        return (mode is not None and any(c in str(mode) for c in "wax+")) or (mode is None and bool(flags & _WRITE_FLAGS))
    return event in {"os.rename", "os.replace", "os.mkdir", "os.remove", "shutil.rmtree", "os.rmdir"}


def trace_writes(watch: Path, trace_file: Path) -> None:
    watch = str(watch.resolve())
    seen: set[str] = set()

    def hook(event, args):
        if not args or not _is_write(event, args):
            return
        path = os.fspath(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if path and os.path.abspath(path).startswith(watch) and path not in seen:
            seen.add(path)
            with open(trace_file, "a", encoding="utf-8") as handle:  # outside `watch`: not traced
                handle.write(f"{event} {path}\n")

    sys.addaudithook(hook)


def probe(spec: dict) -> int:
    """Minimal DDP check: all-reduce the ranks, rank 0 writes the result; optionally fail one rank
    (`fail_rank`: exit code 3) or raise in one (`raise_rank`)."""
    import torch
    from accelerate import Accelerator

    from bertflow.distributed import close_process_group, is_main_process, world_size

    accelerator = Accelerator(cpu=spec["cpu"])
    total = accelerator.reduce(torch.tensor(float(accelerator.process_index)), reduction="sum").item()
    if accelerator.process_index == spec.get("raise_rank"):
        raise RuntimeError(f"rank {accelerator.process_index} raising on purpose")
    if accelerator.process_index == spec.get("fail_rank"):
        print(f"rank {accelerator.process_index} failing on purpose", flush=True)
        close_process_group(synchronize=False)
        return 3
    if spec.get("fail_rank") is not None:
        # The others wait for torchrun to stop them once the failing rank has exited: a barrier
        # here could fail first (its peer gone), and the launcher would then report that rank's
        # error, not the exit code 3 the test looks for.
        time.sleep(120)
    if is_main_process():
        Path(spec["out"]).write_text(json.dumps({
            "world_size": world_size(), "accelerate_processes": accelerator.num_processes, "rank_sum": total,
            "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        }))
    close_process_group()
    return 0


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    entry, watch, trace = spec.pop("_entry"), Path(spec.pop("_watch")), Path(spec.pop("_trace"))
    trace.mkdir(parents=True, exist_ok=True)
    trace_writes(watch, trace / f"rank{os.environ.get('RANK', '0')}.txt")
    if entry == "probe":
        return probe(spec)
    inner = trace / f"spec-rank{os.environ.get('RANK', '0')}.json"
    inner.write_text(json.dumps(spec))
    return importlib.import_module(entry).main([str(inner)])


if __name__ == "__main__":
    sys.exit(main())
