"""A stage's own entry point (`python -m bertflow.<stage> SPEC.json`) in a child process, and the
signal a time limit sends it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_stage(module: str, spec: dict, spec_file: Path) -> subprocess.Popen:
    """Start the stage; its log (stdout and stderr together) is the process' stdout."""
    spec_file.write_text(json.dumps(spec))
    return subprocess.Popen([sys.executable, "-m", module, str(spec_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sigterm_after(proc: subprocess.Popen, marker: str, timeout: float = 300) -> str:
    """SIGTERM once a log line holds `marker`; asserts the stage stopped as a checkpointed stop
    (exit 143). Returns the rest of its log."""
    for line in proc.stdout:
        if marker in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=timeout) == 143, rest
    return rest


def wait_for_line(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until the log file `log` holds `pattern`, while `proc` (which writes it) still runs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and pattern in log.read_text():
            return
        assert proc.poll() is None, f"{proc.args[:3]} ended before {pattern!r}:\n{proc.stdout.read()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in {log} after {timeout} s")
