"""The keys that say what a fine-tuning task is measured by, as metrics.json and summary.json carry them:
`task_metrics` (its official metric keys, in display order), `task_label` (its display name) and
`glue` (whether it counts in the GLUE score). The report, leaderboard and card read them here."""

from __future__ import annotations

from .errors import DataError

TASK_KEYS = ("task_metrics", "task_label", "glue")
# The built-in tasks' keys, for a metrics.json written before the task keys existed.
TASK_DEFAULTS = {
    "sst2": {"task_metrics": ["accuracy"], "task_label": "SST-2", "glue": True},
    "squad": {"task_metrics": ["exact_match", "f1"], "task_label": "SQuAD v1.1", "glue": False},
}


def task_keys(run: dict, source: str) -> dict:
    """task_metrics / task_label / glue of a run or a summary: its own, else the built-in task's."""
    keys = {key: run[key] for key in TASK_KEYS if key in run} or TASK_DEFAULTS.get(run.get("task"), {})
    if set(keys) != set(TASK_KEYS):
        raise DataError(f"{source}: expected the keys {list(TASK_KEYS)} naming the task's metrics, got {sorted(keys)}")
    return keys
