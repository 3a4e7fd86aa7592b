"""Glue between a Snakemake `script:` rule and a stage function.

`with stage(snakemake):` sends the stage's stdout/stderr and Python logging to the rule's log
file, applies the thread count Snakemake granted, keeps compute stages off the network
(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, as on air-gapped cluster nodes), and turns a `PipelineError` into one clear
line at the end of the log (the traceback above it for the curious); any other exception ends
the log with its type and message, except a full disk, which ends it with the path and the free
space whatever library hit it. A finished stage's outputs get the permissions the umask allows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from pathlib import Path

from .errors import PipelineError
from .io import disk_full_error_of, follow_umask

log = logging.getLogger("bertflow")


OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Progress bars are for terminals: in a log file they are carriage-return noise.
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PlainLog:
    """A log file that keeps only plain text: terminal colour codes dropped (transformers' load
    report prints them even to a file) and carriage returns turned into line ends."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text: str) -> int:
        self.handle.write(_TERMINAL_CODES.sub("", text).replace("\r\n", "\n").replace("\r", "\n"))
        return len(text)

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.handle, name)


def _quiet_progress_bars(previous_stderr) -> list[logging.StreamHandler]:
    """Returns the transformers handlers re-pointed at the log, to point back when the stage ends."""
    os.environ.update(QUIET_ENV)  # for libraries imported from here on
    repointed = []
    if "transformers" in sys.modules:  # already imported by the stage script: switch them off there
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        for handler in logging.getLogger("transformers").handlers:  # bound to the stderr of its import
            if isinstance(handler, logging.StreamHandler) and handler.stream is previous_stderr:
                handler.setStream(sys.stderr)
                repointed.append(handler)
    elif "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    return repointed


def _restore_root_logging(handlers: list[logging.Handler], level: int) -> None:
    """Put back the root handlers basicConfig(force=True) replaced: ours write to a closed log."""
    for handler in logging.root.handlers[:]:
        logging.root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        logging.root.addHandler(handler)
    logging.root.setLevel(level)


@contextlib.contextmanager
def stage(smk, *, network: bool = False, uses_torch: bool = False):
    """`network=True` only for download stages: every other stage runs as on an air-gapped node.
    `uses_torch=True` for the stages that run models: torch gets the rule's thread count."""
    if not network:
        os.environ.update(OFFLINE_ENV)
    log_path = Path(smk.log[0]) if smk.log else None
    handle, previous, repointed = None, (sys.stdout, sys.stderr), []
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "a", buffering=1, encoding="utf-8")
        sys.stdout = sys.stderr = PlainLog(handle)
        repointed = _quiet_progress_bars(previous[1])
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    _limit_threads(getattr(smk, "threads", None), uses_torch)
    log.info("rule %s started (pid %d)", getattr(smk, "rule", "?"), os.getpid())
    try:
        yield
        for output in getattr(smk, "output", None) or []:  # libraries' temp-file writes are owner-only
            follow_umask(output)
    except BaseException as err:
        log.exception("rule %s failed", getattr(smk, "rule", "?"))
        # A full disk anywhere a stage writes (models, features, figures) reads as such, with a path.
        full = disk_full_error_of(err, smk.output[0] if getattr(smk, "output", None) else ".",
                                  f"the outputs of rule {getattr(smk, 'rule', '?')}")
        log.error("rule %s failed: %s", getattr(smk, "rule", "?"), failure_cause(full or err))  # the log's last line
        if full is not None:
            raise full from err
        raise
    finally:
        # A stage script ends here anyway; a caller in the same process (tests) gets its streams back.
        _restore_root_logging(root_handlers, root_level)
        if handle is not None:
            for handler in repointed:
                handler.setStream(previous[1])
            sys.stdout, sys.stderr = previous
            handle.close()


def failure_cause(err: BaseException, limit: int = 1000) -> str:
    """One line naming the cause: our own errors say what to fix; any other error (torch,
    transformers, a bug) is named by its type, as `tail -1` of the log is often all one reads."""
    text = " ".join(str(err).split())
    if not isinstance(err, PipelineError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _limit_threads(threads: int | None, uses_torch: bool) -> None:
    if not threads:
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))  # the Rust tokenizers' thread pool
    # Only a stage that trains or runs models imports torch here: importing it costs every other
    # stage (tokenizer, reports, HTML pages) about 1.5 s and 200 MiB.
    if uses_torch:
        import torch

        torch.set_num_threads(int(threads))
