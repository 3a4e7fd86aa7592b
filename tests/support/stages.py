"""A stage's own entry point (`python -m bertflow.<stage> SPEC.json`) in a child process, and the
signal a time limit sends it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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
