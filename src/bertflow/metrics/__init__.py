"""The run's metrics as `evaluate` modules kept in this folder.

`evaluate.load("<folder>/sst2.py")` reads a local file, so they work offline (no Hub download).
Each module here is also an ordinary Python module, unit-tested against sklearn and the official
SQuAD v1.1 and v2.0 scripts' rules (tests/test_squad_metrics.py, tests/test_squad_v2.py).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

METRICS_DIR = Path(__file__).parent


@lru_cache(maxsize=None)  # loaded once per process, not once per evaluation
def load(name: str, config_name: str | None = None):
    """The evaluate module `name` (sst2, squad_v1, squad_v2, glue) from this folder; `config_name`:
    the module's configuration (glue: the task, or classification / regression)."""
    import evaluate

    return evaluate.load(str(METRICS_DIR / f"{name}.py"), config_name)
