"""Which files a stage runs (bertflow.code_deps): the imports followed, and a digest of content only."""

from __future__ import annotations

import os

from support.workflow import REPO

from bertflow.code_deps import code_digest, imported_names, stage_files


def make_package(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "src"


def names(paths, src):
    return {p.relative_to(src.resolve()).as_posix() for p in paths if src.resolve() in p.parents}


def test_relative_and_function_level_imports_are_resolved():
    source = "from .a import b\nfrom . import c\ndef f():\n    from ..top import x\n    import os\n"
    assert imported_names(source, "pkg.sub.mod", False) == {
        "pkg.sub.a", "pkg.sub.a.b", "pkg.sub", "pkg.sub.c", "pkg.top", "pkg.top.x", "os"}
    assert "pkg.sub.a" in imported_names("from .a import b\n", "pkg.sub", True)


def test_stage_files_follow_imports_transitively_and_skip_the_rest(tmp_path):
    src = make_package(tmp_path, {
        "bertflow/__init__.py": "",
        "bertflow/stage.py": "def run():\n    from .helper import h\n",
        "bertflow/helper.py": "import json\n",
        "bertflow/unused.py": "",
        "bertflow/metrics/__init__.py": "",
        "bertflow/metrics/loaded_by_path.py": "from bertflow import deep\n",
        "bertflow/deep.py": "",
    })
    script = tmp_path / "script.py"
    script.write_text("from bertflow.stage import run\n")
    assert names(stage_files(script, src), src) == {"bertflow/__init__.py", "bertflow/stage.py", "bertflow/helper.py"}
    script.write_text("import bertflow.metrics\n")
    assert names(stage_files(script, src), src) == {
        "bertflow/__init__.py", "bertflow/metrics/__init__.py", "bertflow/metrics/loaded_by_path.py",
        "bertflow/deep.py"}


def test_digest_changes_with_content_not_with_mtime(tmp_path):
    src = make_package(tmp_path, {"bertflow/__init__.py": "", "bertflow/stage.py": "x = 1\n"})
    script = tmp_path / "script.py"
    script.write_text("from bertflow.stage import x\n")
    before = code_digest(script, src)
    os.utime(src / "bertflow" / "stage.py", (0, 0))
    assert code_digest(script, src) == before
    (src / "bertflow" / "stage.py").write_text("x = 2\n")
    assert code_digest(script, src) != before


def test_tokenizer_stage_does_not_depend_on_pretraining_code():
    files = names(stage_files(REPO / "scripts" / "train_tokenizer.py", REPO / "src"), REPO / "src")
    assert "bertflow/tokenizer.py" in files and "bertflow/pretrain.py" not in files
    files = names(stage_files(REPO / "scripts" / "finetune.py", REPO / "src"), REPO / "src")
    assert {"bertflow/finetune.py", "bertflow/metrics/squad_v1.py", "bertflow/squad_metrics.py"} <= files
