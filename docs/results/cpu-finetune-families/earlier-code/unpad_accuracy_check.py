"""Our side alone on one family's benchmark model folder: the stage's defaults (`unpad` on where
it serves the family) against `unpad: false`, per seed, one after the other (accuracy, not speed).

    OMP_NUM_THREADS=1 python docs/results/cpu-finetune-families/earlier-code/unpad_accuracy_check.py DIR SEED...

DIR holds model/, train.tsv and validation.tsv (a copy of the benchmark's files for one family).
"""

import sys
import tempfile

import torch

from bertflow.finetune import finetune

SETTINGS = {"epochs": 2, "batch_size": 32, "eval_batch_size": 128, "learning_rate": 1e-3, "weight_decay": 0.01,
            "warmup_ratio": 0.1, "max_length": 64, "max_train_samples": 2000, "max_eval_samples": 872}


def main(folder: str, seeds: list[int]) -> None:
    torch.set_num_threads(1)
    for seed in seeds:
        for unpad in (True, False):
            with tempfile.TemporaryDirectory() as out:
                result = finetune(task="sst2", model_dir=f"{folder}/model", train_file=f"{folder}/train.tsv",
                                  validation_file=f"{folder}/validation.tsv", out_dir=out,
                                  settings={**SETTINGS, "unpad": unpad}, seed=seed, device="cpu")
            losses = ", ".join(f"{e['train_loss']:.4f}" for e in result["epochs"])
            print(f"{folder} seed {seed} unpad {str(unpad):5s} (unpadded: {result['unpadded']}): "
                  f"accuracy {result['accuracy']:.2f}, epoch losses {losses}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
