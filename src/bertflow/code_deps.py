"""Which source files a stage runs, and one digest of their content, so that Snakemake reruns a
stage when its code changes (the workflow passes the digest as a rule param).

A stage is a thin script under scripts/ plus the bertflow modules it imports, followed through
every `import` / `from ... import` anywhere in the files (also those inside functions), read with
`ast` without importing anything. A subpackage (bertflow/metrics) counts as a whole: its folder
also holds code that is loaded by path (the `evaluate` modules). Only file content goes into the
digest, so `touch` alone changes nothing. Standard library only: Snakemake imports this
while it parses the workflow.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "bertflow"


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Dotted names a file imports; relative imports resolved against `module` (its own dotted name).

    `from a import b` yields both `a` and `a.b`, since b may be a submodule."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _module_file(name: str, src_dir: Path) -> Path | None:
    path = src_dir.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(name: str) -> list[str]:
    """`bertflow.a.b` -> bertflow, bertflow.a, bertflow.a.b: importing a module runs its parents."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _dotted(path: Path, src_dir: Path) -> str:
    parts = path.relative_to(src_dir).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_files(script: str | Path, src_dir: str | Path, package: str = PACKAGE) -> list[Path]:
    """The script plus every file of `package` (under src_dir) it can run, sorted."""
    script, src_dir = Path(script).resolve(), Path(src_dir).resolve()
    files = {script}
    pending = [(script, "__main__")]
    while pending:
        path, module = pending.pop()
        for name in imported_names(path.read_text(), module, path.name == "__init__.py"):
            if name.split(".")[0] != package:
                continue
            for dotted in _with_parents(name):
                found = _module_file(dotted, src_dir)
                if found is None:
                    continue
                # A subpackage brings its whole folder; the top package only its __init__.
                whole = found.name == "__init__.py" and dotted != package
                for new in sorted(found.parent.rglob("*.py")) if whole else [found]:
                    if new not in files:
                        files.add(new)
                        pending.append((new, _dotted(new, src_dir)))
    return sorted(files)


def code_digest(script: str | Path, src_dir: str | Path, package: str = PACKAGE) -> str:
    """sha256 over the names (relative to the repository) and content of the stage's files."""
    root = Path(src_dir).resolve().parent
    digest = hashlib.sha256()
    for path in stage_files(script, src_dir, package):
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            name = path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
