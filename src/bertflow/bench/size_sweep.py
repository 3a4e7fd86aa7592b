"""Model size at a fixed pretraining budget: which preset learns most in N minutes on this device.

    python -m bertflow.bench.size_sweep --config config/gpu_wikibooks.yaml --presets mini small medium \\
        --time-budget 3

Each preset pretrains on the tokenizer and blocks a workflow run made (default:
RESULTS_DIR/tokenizer and RESULTS_DIR/blocks of the config) with the config's `pretrain` section as
the workflow would run it (config/config.yaml under it, the schema's defaults filled in), only
`preset` and `time_budget` changed (and any `--set KEY=VALUE`). The presets run one after the other,
each through the pretrain stage's own entry point in a fresh process (`bertflow.bench.sweep`), so
each gets the whole device and its own compilation. Written to OUT (default RESULTS_DIR/size_sweep):
size_sweep.json and size_sweep.md (preset, parameters, steps, tokens seen, tokens/s = tokens seen /
training seconds, compilation included as in the budget, final validation perplexity, training and
wall time, device) and per preset its perplexity.csv/png,
train_info.json, stage.log and attempts.jsonl (model weights are removed unless --keep-models).

Interrupted (SIGTERM, e.g. a time limit under `timeout`): the running preset
checkpoints; the same command again skips the finished presets and resumes that one from its
checkpoint, its budget counting the training time already spent.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..errors import ConfigError
from ..io import read_json
from ..markdown import table
from .sweep import Run, device_name, key_values, require_dirs, seed_for, sweep_main, workflow_config, write_results

NOT_PASSED = ("seq_len", "num_processes")  # the blocks fix seq_len; the sweep runs one process per preset
SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")  # what a preset sets
PERPLEXITY_KEYS = ("epoch", "step", "perplexity", "elapsed_s", "kind")


def preset_runs(args, config: dict) -> list[Run]:
    """One pretrain stage run per preset: the config's settings with the preset and budget changed."""
    base = {k: v for k, v in config["pretrain"].items() if k not in NOT_PASSED}
    fixed = sorted(k for k, v in (base.get("model") or {}).items() if k in SHAPE_KEYS and v is not None)
    if fixed:
        raise ConfigError(f"{args.config}: pretrain.model sets {', '.join(fixed)}, which would override every "
                          "preset's shape; remove them for a size sweep")
    runs = []
    for preset in args.presets:
        folder = Path(args.out, preset)
        train = {**base, **args.set, "preset": preset, "time_budget": args.time_budget}
        outputs = {"model": str(folder / "model"), "perplexity": str(folder / "perplexity.csv"),
                   "plot": str(folder / "perplexity.png"), "info": str(folder / "train_info.json")}
        spec = {"tokenizer_dir": args.tokenizer, "blocks_dir": args.blocks, "outputs": outputs, "train": train,
                "device": args.device or config["device"], "seed": seed_for(config, "pretrain"),
                "checkpoint_dir": str(folder / "checkpoints")}
        runs.append(Run(preset, "bertflow.pretrain", spec, folder, "train_info.json"))
    return runs


def perplexity_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: (row[k] if k == "kind" else float(row[k])) for k in PERPLEXITY_KEYS} for row in csv.DictReader(handle)]


def result_row(run: Run) -> dict:
    """What a finished preset reached, from the stage's train_info.json and perplexity.csv."""
    info = read_json(run.folder / "train_info.json")
    attempts = run.attempts()
    return {
        "preset": run.name, "parameters": info["parameters"], "steps": info["steps"],
        "tokens_seen": info["tokens_seen"], "tokens_per_s": info["tokens_seen"] / info["train_time_s"],
        "final_perplexity": info["final_perplexity"], "train_s": info["train_time_s"],
        "train_and_eval_s": info["wall_time_s"], "wall_s": sum(a["wall_s"] for a in attempts),
        "attempts": len(attempts), "stopped_by": info["stopped_by"], "precision": info["precision"],
        "compiled": info["compiled"], "device": device_name(info["environment"], info["device"]),
        "perplexity_rows": perplexity_rows(run.folder / "perplexity.csv"),
    }


def markdown(rows: list[dict], pending: list[str], time_budget: float) -> list[str]:
    lines = [f"# Model size at a {time_budget:g}-minute pretraining budget", ""]
    lines += table(["preset", "parameters", "steps", "tokens seen", "tokens/s", "validation perplexity",
                    "training s", "wall s", "device"],
                   [[r["preset"], f"{r['parameters']:,}", f"{r['steps']:,}", f"{r['tokens_seen']:,}",
                     f"{r['tokens_per_s']:,.0f}", f"{r['final_perplexity']:.2f}", f"{r['train_s']:.1f}",
                     f"{r['wall_s']:.1f}" + (f" ({r['attempts']} runs)" if r["attempts"] > 1 else ""), r["device"]]
                    for r in rows], numeric=set(range(1, 8)))
    if pending:
        lines += ["", f"Not finished yet: {', '.join(pending)} (rerun the same command)."]
    return lines


def write_sweep(args, runs: list[Run]) -> list[str]:
    """size_sweep.json and .md from what the finished presets wrote; returns the table."""
    rows = [result_row(run) for run in runs if run.finished()]
    pending = [run.name for run in runs if not run.finished()]
    best = min(rows, key=lambda r: r["final_perplexity"])["preset"] if rows else None
    payload = {"config": args.config, "time_budget_min": args.time_budget, "presets": args.presets,
               "overrides": args.set, "tokenizer": args.tokenizer, "blocks": args.blocks,
               "lowest_perplexity": best, "rows": rows, "pending": pending,
               "settings": runs[0].spec["train"] if runs else {}}
    return write_results(Path(args.out), "size_sweep", payload, markdown(rows, pending, args.time_budget))


def parse_args(argv: list[str] | None):
    from ..presets import PRESETS
    from ..pretrain import Settings

    p = argparse.ArgumentParser(prog="python -m bertflow.bench.size_sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="config/gpu_wikibooks.yaml",
                   help="workflow config file: its results_dir, device, seed and pretrain section")
    p.add_argument("--presets", nargs="+", default=["mini", "small", "medium"], choices=sorted(PRESETS))
    p.add_argument("--time-budget", type=float, required=True, help="minutes of training steps per preset")
    p.add_argument("--tokenizer", help="tokenizer folder (default: RESULTS_DIR/tokenizer)")
    p.add_argument("--blocks", help="blocks folder of the tokenize_corpus stage (default: RESULTS_DIR/blocks)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="other pretrain settings for every preset, e.g. eval_every_steps=1000 (JSON values)")
    p.add_argument("--device", help="override the config's device (auto, cpu, cuda)")
    p.add_argument("--out", help="results folder (default: RESULTS_DIR/size_sweep)")
    p.add_argument("--keep-models", action="store_true", help="keep each preset's model folder")
    args = p.parse_args(argv)
    if not args.time_budget > 0:
        raise ConfigError(f"--time-budget: expected minutes > 0, got {args.time_budget}")
    settable = [k for k in Settings.__dataclass_fields__ if k not in ("preset", "time_budget", *NOT_PASSED)]
    args.set = key_values(args.set, settable, "--set")
    args.presets = list(dict.fromkeys(args.presets))
    return args


def prepare(argv: list[str] | None) -> tuple:
    args = parse_args(argv)
    config = workflow_config(args.config)
    results_dir = Path(config["results_dir"])
    args.tokenizer = args.tokenizer or str(results_dir / "tokenizer")
    args.blocks = args.blocks or str(results_dir / "blocks")
    args.out = args.out or str(results_dir / "size_sweep")
    runs = preset_runs(args, config)
    require_dirs(tokenizer=args.tokenizer, blocks=args.blocks)
    return runs, lambda: write_sweep(args, runs), args.out, args.keep_models


def main(argv: list[str] | None = None) -> int:
    return sweep_main(prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
