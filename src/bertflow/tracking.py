"""What a training loop reports while it runs: a plain progress line with an ETA, and TensorBoard
scalars (`tensorboard --logdir results`), both from the main process only.

Log lines carry no carriage returns or colour codes, so `tail -f results/logs/<rule>.log` reads well.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Tracker:
    """`progress(step, total, **scalars)` logs one line; `scalars(step, **values)` goes to TensorBoard.

    `log_dir=None` (or `enabled=False`) writes no event files; the progress lines stay.
    `purge_step`: a resumed run drops the events logged after its checkpoint's step (TensorBoard
    hides them), so a curve does not show the replayed steps twice.
    """

    def __init__(self, name: str, log_dir: str | Path | None, *, enabled: bool = True, is_main: bool = True,
                 purge_step: int | None = None):
        self.name = name
        self.is_main = is_main
        self.writer = None
        if enabled and is_main and log_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # e.g. a compute node with only torch: training matters more than curves
                log.warning("the tensorboard package is not installed: no event files in %s "
                            "(pip install tensorboard, or set tensorboard: false)", log_dir)
            else:
                self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step, flush_secs=30)
        self.started = time.perf_counter()
        self.start_step: int | None = None

    def progress(self, step: int, total: int | None, *, label: str = "", eta_s: float | None = None,
                 **scalars: float) -> None:
        """One progress line: [label] step/total, the given scalars, and an ETA from the rate since start.

        `total=None` (a run bounded by time, not steps) prints the step alone; `eta_s` overrides the
        estimate (e.g. the time left of a budget).
        """
        if not self.is_main:
            return
        if self.start_step is None:
            self.start_step, self.started = step, time.perf_counter()
            eta = "?"
        else:
            rate = (step - self.start_step) / max(time.perf_counter() - self.started, 1e-9)
            eta = format_eta((total - step) / rate) if rate > 0 and total is not None else "?"
        if eta_s is not None:
            eta = format_eta(eta_s)
        where = f"{step}/{total}" if total is not None else str(step)
        values = " ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4g}" for k, v in scalars.items())
        log.info("%s %sstep %s %s eta %s", self.name, f"{label} " if label else "", where, values, eta)

    def scalars(self, step: int, **values: float) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(f"{self.name}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
