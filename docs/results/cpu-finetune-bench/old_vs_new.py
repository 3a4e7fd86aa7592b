"""SST-2 fine-tuning, old vs new stage code, same files: `python old_vs_new.py LABEL DIR` with DIR the
folder `benchmarks.finetune_bench.prepare_task("sst2", args, WORKDIR)` filled (WORKDIR/sst2;
here /tmp/h3/profwd/sst2), PYTHONPATH pointing at the code under test, OMP_NUM_THREADS=1."""
import json, sys, torch
from bertflow.finetune import finetune
torch.set_num_threads(1)
wd = sys.argv[2] if len(sys.argv) > 2 else "/tmp/h3/profwd/sst2"
settings = {"epochs": 2, "batch_size": 32, "eval_batch_size": 128, "learning_rate": 1e-3, "weight_decay": 0.01,
            "warmup_ratio": 0.1, "max_length": 64, "max_train_samples": 4000, "max_eval_samples": 872}
for seed in (1, 2):
    r = finetune(task="sst2", model_dir=f"{wd}/model", train_file=f"{wd}/train.tsv", validation_file=f"{wd}/validation.tsv",
                 out_dir=f"/tmp/h3/oldnew_{sys.argv[1]}_{seed}", settings=settings, seed=seed, device="cpu")
    print(json.dumps({"code": sys.argv[1], "seed": seed, "accuracy": r["accuracy"], "train_seconds": sum(e["train_seconds"] for e in r["epochs"])}), flush=True)
