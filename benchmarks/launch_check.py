"""The GPU (NCCL) path of the distributed launcher, checked on one CUDA GPU.

What it runs, on the tokenizer, blocks and SST-2 data of a tiny workflow run (RUN/results/...):
1. pretraining in this process (as the workflow does with num_processes: 1) and through
   `bertflow.distributed.launch` (torchrun, 1 NCCL process): same schedule, eval loss close;
2. the launched pretraining stopped with SIGTERM mid-epoch (what SLURM sends at a time limit):
   the launcher reports exit code 143, a checkpoint is left, a relaunch resumes from it and ends
   with the uninterrupted run's steps;
3. SST-2 fine-tuning in this process and launched (1 NCCL process): same accuracy range;
4. asking for more GPU processes than there are GPUs fails before anything starts.
Prints one JSON summary (also written to OUT/launch_check.json).

    python -m benchmarks.launch_check RUN OUT
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from bertflow.distributed import check_processes, launch
from bertflow.errors import ResourceError
from bertflow.finetune import finetune
from bertflow.pretrain import pretrain

TRAIN = {"preset": "tiny", "model": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128},
         "seq_len": 32, "epochs": 3, "batch_size": 16, "learning_rate": 2e-3, "log_every_steps": 5,
         "checkpoint_every_steps": 10}


def pretrain_spec(run: Path, out: Path) -> dict:
    return {
        "tokenizer_dir": str(run / "results/tokenizer"), "blocks_dir": str(run / "results/blocks"),
        "outputs": {k: str(out / name) for k, name in
                    (("model", "model"), ("perplexity", "ppl.csv"), ("plot", "ppl.png"), ("info", "info.json"))},
        "train": TRAIN, "device": "cuda", "seed": 5, "checkpoint_dir": str(out / "checkpoints"),
    }


def finetune_spec(run: Path, model_dir: Path, out: Path) -> dict:
    return {
        "task": "sst2", "model_name": "pretrained", "model_dir": str(model_dir),
        "train_file": str(run / "results/data/sst2/train.tsv"),
        "validation_file": str(run / "results/data/sst2/validation.tsv"), "out_dir": str(out),
        "settings": {"epochs": 3, "batch_size": 8, "max_length": 24, "learning_rate": 1e-3}, "seed": 1,
        "device": "cuda",
    }


def summary(out: Path) -> dict:
    info = json.loads((out / "info.json").read_text())
    rows = list(csv.DictReader(open(out / "ppl.csv")))
    return {"steps": info["steps"], "processes": info["processes"], "compiled": info.get("compiled"),
            "eval_loss_per_epoch": [round(float(r["eval_loss"]), 4) for r in rows],
            "tokens_per_s_last_epoch": round(float(rows[-1]["tokens_per_s"]))}


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return round(time.perf_counter() - start, 1)


def sigterm_then_resume(spec: dict, work: Path) -> dict:
    """Launch in a child (our launcher forwards SIGTERM to torchrun and the rank), stop it, relaunch."""
    spec_path = work / "killed-spec.json"
    spec_path.write_text(json.dumps(spec))
    driver = ("import json, sys; from bertflow.distributed import launch; "
              f"launch('bertflow.pretrain', json.load(open({str(spec_path)!r})), 1, cpu=False)")
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "epoch 2 step 60/" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    code = proc.wait(timeout=300)
    out = Path(spec["outputs"]["info"]).parent
    checkpoint = torch.load(out / "checkpoints/last.pt", weights_only=False)
    error = [line for line in rest.splitlines() if "LaunchError" in line]
    stopped = {"driver_exit_code": code, "launch_error": error[-1] if error else None,
               "checkpoint_step": checkpoint["progress"]["global_step"], "outputs_absent": not (out / "info.json").exists()}
    log_path = work / "resume.log"
    with open(log_path, "w") as stream:
        launch("bertflow.pretrain", spec, 1, cpu=False, stream=stream)
    resumed = [line for line in log_path.read_text().splitlines() if "resumed from" in line]
    return {**stopped, "resumed_line": resumed[-1].split("bertflow.pretrain: ")[-1] if resumed else None,
            **summary(out), "checkpoint_removed": not (out / "checkpoints").exists()}


def main(run: Path, out_dir: Path) -> dict:
    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "gpus": torch.cuda.device_count()}

    single, launched = work / "pretrain-inprocess", work / "pretrain-launched"
    result["pretrain_inprocess_s"] = timed(pretrain, **pretrain_spec(run, single))
    result["pretrain_launched_s"] = timed(launch, "bertflow.pretrain", pretrain_spec(run, launched), 1, cpu=False,
                                          stream=open(work / "launched.log", "w"))
    result["pretrain_inprocess"], result["pretrain_launched"] = summary(single), summary(launched)
    result["pretrain_sigterm_resume"] = sigterm_then_resume(pretrain_spec(run, work / "pretrain-killed"), work)

    model = single / "model"
    ft_single, ft_launched = work / "ft-inprocess", work / "ft-launched"
    finetune(**finetune_spec(run, model, ft_single))
    launch("bertflow.finetune", finetune_spec(run, model, ft_launched), 1, cpu=False,
           stream=open(work / "ft-launched.log", "w"))
    for name, folder in (("finetune_inprocess", ft_single), ("finetune_launched", ft_launched)):
        metrics = json.loads((folder / "metrics.json").read_text())
        result[name] = {"accuracy": round(metrics["accuracy"], 2), "processes": metrics["processes"],
                        "train_loss_per_epoch": [round(e["train_loss"], 4) for e in metrics["epochs"]]}

    try:
        check_processes(torch.cuda.device_count() + 1, cpu=False)
        result["too_many_gpu_processes"] = "not refused"
    except ResourceError as err:
        result["too_many_gpu_processes"] = f"refused: {err}"

    (out_dir / "launch_check.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
