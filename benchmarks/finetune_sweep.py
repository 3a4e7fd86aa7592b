"""Fine-tuning hyperparameters by a small grid: the dev metric of each setting, and the best per task.

    python -m benchmarks.finetune_sweep --config config/gpu_wikibooks.yaml \\
        --grid sst2.learning_rate=5e-5,1e-4,2e-4 squad.learning_rate=1e-4,2e-4,4e-4

Each grid point fine-tunes the pretrained model of a workflow run (default
RESULTS_DIR/pretrain/model) on the task files its prepare_task_data stage wrote (default
RESULTS_DIR/data/sst2/{train,validation}.tsv, RESULTS_DIR/data/squad/{train,validation}.json) with
the config's settings for the task (as the workflow runs them: config/config.yaml under the file,
the schema's defaults) and the point's values over them; one seed (the config's first
`finetune.seeds`, or --seed). Every run is the finetune stage's own entry point in a fresh process
(`benchmarks.sweep`); the tokenized features are shared by the runs of a task. Written to OUT
(default RESULTS_DIR/finetune_sweep): finetune_sweep.json and finetune_sweep.md (per setting the
final dev metric, its value after each epoch, the training and wall time; the best setting per
task), and per run the stage's metrics.json, epochs.csv, stage.log and attempts.jsonl (fine-tuned
weights are removed unless --keep-models). The selection metric is SST-2 accuracy and SQuAD F1
at the last epoch, what the workflow reports.

A rerun skips finished runs; a run cut by SIGTERM checkpoints at its next step and resumes from
there. One seed per point: differences smaller than the seed-to-seed spread (SST-2
accuracy +-0.4, SQuAD F1 +-2 for the config's settings on the GPU) do not pick a winner.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository on sys.path, to import `benchmarks`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bertflow.errors import ConfigError
from bertflow.io import read_json
from bertflow.markdown import table
from bertflow.task_data import DATA_SOURCE_KEYS, TASK_DATA_FILES
from bertflow.tasks import GLUE_TASKS
from benchmarks.sweep import Run, grid_points, json_or_text, require_dirs, sweep_main, workflow_config, write_results

SELECTION_METRIC = {**{name: task.metrics[0] for name, task in GLUE_TASKS.items()}, "squad": "f1"}
DEFAULT_GRID = ["sst2.learning_rate=5e-5,1e-4,2e-4", "squad.learning_rate=1e-4,2e-4,4e-4"]


def parse_grid(items: list[str]) -> dict[str, dict[str, list]]:
    """`TASK.KEY=V1,V2,...` items -> {task: {key: [values]}} (JSON values, else strings)."""
    from bertflow.finetune import FinetuneSettings

    grid: dict[str, dict[str, list]] = {}
    for item in items:
        name, _, values = item.partition("=")
        task, _, key = name.partition(".")
        if task not in TASK_DATA_FILES or key not in FinetuneSettings.__dataclass_fields__ or not values:
            raise ConfigError(f"--grid {item!r}: expected TASK.KEY=V1,V2,... with TASK one of "
                              f"{', '.join(TASK_DATA_FILES)} and KEY a fine-tuning setting "
                              f"({', '.join(FinetuneSettings.__dataclass_fields__)})")
        grid.setdefault(task, {})[key] = [json_or_text(value) for value in values.split(",")]
    return grid


def point_name(point: dict) -> str:
    return "_".join(f"{key}={value}" for key, value in point.items()) or "config"


def task_runs(args, config: dict, task: str) -> list[Run]:
    """One finetune stage run per grid point of `task`, over the config's settings for the task."""
    section = config["finetune"][task]
    base = {k: v for k, v in section.items() if k not in DATA_SOURCE_KEYS}
    train_file, validation_file = (str(Path(args.data, task, name)) for name in TASK_DATA_FILES[task])
    runs = []
    for point in grid_points(args.grid.get(task, {})):
        folder = Path(args.out, task, point_name(point))
        spec = {"task": task, "model_dir": args.model, "train_file": train_file, "validation_file": validation_file,
                "out_dir": str(folder), "settings": {**base, **point}, "seed": args.seed,
                "device": args.device or config["device"], "model_name": "pretrained",
                "features_cache": str(Path(args.out, task, "features")), "tensorboard": False,
                "checkpoint_dir": str(folder / "checkpoints")}
        runs.append(Run(f"{task} {point_name(point)}", "bertflow.finetune", spec, folder, "metrics.json"))
    return runs


def require_task_files(runs: list[Run]) -> None:
    missing = sorted({path for run in runs for path in (run.spec["train_file"], run.spec["validation_file"])
                      if not Path(path).is_file()})
    if missing:
        raise ConfigError(f"task file(s) not found: {', '.join(missing)} (the workflow's prepare_task_data stage "
                          "writes them; or give --data DIR with sst2/train.tsv, sst2/validation.tsv, "
                          "squad/train.json, squad/validation.json)")


def result_row(run: Run, axes: list[str]) -> dict:
    """What a finished run reached, from the stage's metrics.json."""
    result, task = read_json(run.folder / "metrics.json"), run.spec["task"]
    metric = SELECTION_METRIC[task]
    attempts = run.attempts()
    return {
        "task": task, "setting": {key: run.spec["settings"][key] for key in axes}, "metric": metric,
        "value": result[metric], "metrics": {k: result[k] for k in ("accuracy", "f1", "exact_match") if k in result},
        "by_epoch": [epoch[metric] for epoch in result["epochs"]],
        "train_s": sum(epoch["train_seconds"] for epoch in result["epochs"]),
        "wall_s": sum(a["wall_s"] for a in attempts), "attempts": len(attempts),
        "settings": result["settings"], "precision": result["compute_precision"],
    }


def best_settings(rows: list[dict]) -> dict[str, dict]:
    """Per task the row with the highest selection metric (the first of equals)."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["task"] not in best or row["value"] > best[row["task"]]["value"]:
            best[row["task"]] = row
    return {task: {"setting": row["setting"], row["metric"]: row["value"]} for task, row in best.items()}


def markdown(rows: list[dict], best: dict, pending: list[str], seed: int) -> list[str]:
    lines = [f"# Fine-tuning sweep (seed {seed}, one run per setting)", ""]
    lines += table(["task", "setting", "dev metric", "by epoch", "training s", "wall s"],
                   [[r["task"], point_name(r["setting"]), f"{r['metric']} {r['value']:.2f}",
                     ", ".join(f"{v:.2f}" for v in r["by_epoch"]), f"{r['train_s']:.1f}", f"{r['wall_s']:.1f}"]
                    for r in rows], numeric={4, 5})
    for task, choice in best.items():
        metric = SELECTION_METRIC[task]
        lines += ["", f"Best for {task}: {point_name(choice['setting'])} ({metric} {choice[metric]:.2f})."]
    if pending:
        lines += ["", f"Not finished yet: {', '.join(pending)} (rerun the same command)."]
    return lines


def write_sweep(args, runs: list[Run]) -> list[str]:
    """finetune_sweep.json and .md from what the finished runs wrote; returns the table."""
    rows = [result_row(run, list(args.grid.get(run.spec["task"], {}))) for run in runs if run.finished()]
    pending = [run.name for run in runs if not run.finished()]
    best = best_settings(rows)
    payload = {"config": args.config, "model": args.model, "data": args.data, "seed": args.seed, "grid": args.grid,
               "best": best, "rows": rows, "pending": pending}
    return write_results(Path(args.out), "finetune_sweep", payload, markdown(rows, best, pending, args.seed))


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.finetune_sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="config/gpu_wikibooks.yaml",
                   help="workflow config file: its results_dir, device, finetune seeds and task settings")
    p.add_argument("--tasks", nargs="+", choices=sorted(TASK_DATA_FILES), default=["sst2", "squad"])
    p.add_argument("--grid", nargs="+", default=DEFAULT_GRID, metavar="TASK.KEY=V1,V2",
                   help="values per setting; the points are every combination of a task's settings")
    p.add_argument("--model", help="pretrained model folder (default: RESULTS_DIR/pretrain/model)")
    p.add_argument("--data", help="folder with sst2/ and squad/ task files (default: RESULTS_DIR/data)")
    p.add_argument("--seed", type=int, help="fine-tuning seed (default: the config's first finetune.seeds)")
    p.add_argument("--device", help="override the config's device (auto, cpu, cuda)")
    p.add_argument("--out", help="results folder (default: RESULTS_DIR/finetune_sweep)")
    p.add_argument("--keep-models", action="store_true", help="keep each run's fine-tuned model folder")
    args = p.parse_args(argv)
    args.grid = {task: axes for task, axes in parse_grid(args.grid).items() if task in args.tasks}
    args.grid.update({task: {} for task in args.tasks if task not in args.grid})  # no axis: the config's settings
    return args


def prepare(argv: list[str] | None) -> tuple:
    args = parse_args(argv)
    config = workflow_config(args.config)
    results_dir = Path(config["results_dir"])
    args.model = args.model or str(results_dir / "pretrain" / "model")
    args.data = args.data or str(results_dir / "data")
    args.out = args.out or str(results_dir / "finetune_sweep")
    args.seed = config["finetune"]["seeds"][0] if args.seed is None else args.seed
    require_dirs(model=args.model)
    runs = [run for task in args.tasks for run in task_runs(args, config, task)]
    require_task_files(runs)
    return runs, lambda: write_sweep(args, runs), args.out, args.keep_models


def main(argv: list[str] | None = None) -> int:
    return sweep_main(prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
