"""Start-up cost of a stage: nothing imports torch unless the stage itself uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

STAGE = """
import json, sys, types
from bertflow.stage import stage
from bertflow.provenance import environment_info
smk = types.SimpleNamespace(log=[{log!r}], threads=3, rule="x")
with stage(smk, uses_torch={uses_torch}):
    before = environment_info()["device"]
    imported_by_stage = "torch" in sys.modules
    {body}
print(json.dumps({{"imported_by_stage": imported_by_stage, "before": before, "after": after}}))
"""


def run_stage(tmp_path, body: str, uses_torch: bool = False) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the stage's own count (3) must still reach torch
    code = STAGE.format(log=str(tmp_path / "x.log"), body=body, uses_torch=uses_torch)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr + (tmp_path / "x.log").read_text()
    return json.loads(result.stdout)


def test_stage_without_torch_never_imports_it(tmp_path):
    out = run_stage(tmp_path, "after = sorted(m for m in ('torch', 'transformers') if m in sys.modules)")
    assert out["imported_by_stage"] is False and out["after"] == []
    assert out["before"] == {"torch_imported": False, "cpu_count": os.cpu_count()}


def test_a_torch_stage_gets_the_rule_threads_at_its_start(tmp_path):
    out = run_stage(tmp_path, "import torch; after = [torch.get_num_threads(), environment_info()[\"device\"]]",
                    uses_torch=True)
    threads, device = out["after"]
    assert out["imported_by_stage"] is True
    assert threads == 3  # the rule's count, not the environment's OMP_NUM_THREADS=1
    assert device["cpu_threads"] == 3 and device["cuda_available"] in (True, False)
