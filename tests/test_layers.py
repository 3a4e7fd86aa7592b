"""The package's import graph: no cycle, and the package never imports the benchmarks (benchmarks/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bertflow
from benchmarks import child_env
from bertflow.code_deps import imported_names

PACKAGE = Path(bertflow.__file__).parent
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def module_name(path: Path) -> str:
    parts = ("bertflow",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere (top level or inside a function), read as
    the workflow's code digests read them (`code_deps.imported_names`)."""
    name = module_name(path)
    return {n for n in imported_names(path.read_text(), name, path.name == "__init__.py") if n in modules} - {name}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_graph_finds_the_package_imports():
    graph = import_graph()
    assert "bertflow.runtime" in graph["bertflow.pretrain"]
    assert "bertflow.errors" in graph["bertflow.pretrain"]  # a relative import, resolved


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    assert find_cycle(import_graph()) is None


def benchmark_imports(path: Path, module: str) -> set[str]:
    """What `path` (module `module`) imports of the `benchmarks` package, anywhere in the file."""
    names = imported_names(path.read_text(), module, path.name == "__init__.py")
    return {n for n in names if n == "benchmarks" or n.startswith("benchmarks.")}


def test_the_package_does_not_import_the_benchmarks():
    imports = {module_name(p): benchmark_imports(p, module_name(p)) for p in PACKAGE.rglob("*.py")}
    upward = {module: names for module, names in imports.items() if names}
    assert not upward, f"bertflow modules import the benchmarks: {upward}"
    assert not (PACKAGE / "bench").exists(), "the benchmarks live in the top-level benchmarks/ package"


def test_the_benchmark_import_check_sees_imports(tmp_path):
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from benchmarks.pairs import run_worker\n")
    assert benchmark_imports(lazy, "bertflow.lazy") == {"benchmarks.pairs", "benchmarks.pairs.run_worker"}
    # the benchmarks' own imports of each other are seen
    assert "benchmarks.sweep" in benchmark_imports(BENCHMARKS / "size_sweep.py", "benchmarks.size_sweep")


def test_a_benchmark_runs_as_a_script_or_a_module_from_any_directory(tmp_path):
    """As a script it finds its sibling modules itself; `python -m` children get the checkout on
    PYTHONPATH (`child_env`), so neither depends on the working directory."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = [sys.executable, str(BENCHMARKS / "size_sweep.py"), "--help"]
    module = [sys.executable, "-m", "benchmarks.size_sweep", "--help"]
    for command, command_env in ((script, env), (module, child_env(env))):
        done = subprocess.run(command, cwd=tmp_path, env=command_env, capture_output=True, text=True)
        assert done.returncode == 0 and "--presets" in done.stdout, done.stderr[-2000:]
    assert subprocess.run(module, cwd=tmp_path, env=env, capture_output=True).returncode != 0  # what child_env adds
    assert child_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == f"{BENCHMARKS.parent}{os.pathsep}/x"
