# ---- Code each stage runs (included last, after every rule exists)
# A rule's params get `code`: a digest of the content of its script and of every bertflow module
# that script imports, transitively (bertflow/code_deps.py). Snakemake's params rerun-trigger then
# reruns the stage, and what follows it, when that code changes; `touch` alone changes nothing.
import importlib.util

_spec = importlib.util.spec_from_file_location(
    "bertflow_code_deps", os.path.join(workflow.basedir, "src", "bertflow", "code_deps.py")
)
code_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(code_deps)

for _rule in workflow.rules:
    if _rule.script:  # a path relative to rules/, where every rule file lives
        _script = os.path.join(workflow.basedir, "rules", _rule.script)
        _rule.set_params(code=code_deps.code_digest(_script, os.path.join(workflow.basedir, "src")))
