"""The default demo's SQuAD fine-tuning (tiny model pretrained on the generated corpus, 6 epochs, lr 5e-4,
max_length 128) with `unpad` on, off (the padded forward), and off with transformers' own span loss
(padding in the softmax, the loss before this change), per seed. Needs the default demo run in
/tmp/demo3 (docs/finetune.md "Default demo", with `--directory /tmp/demo3`):

    PYTHONPATH=src python docs/results/cpu-finetune-bench/unpad_demo_squad.py unpad|padded|hf_loss [SEEDS]

SEEDS: comma-separated, default 1,2,3. One JSON line per run.
"""

import json, sys, tempfile, torch
from bertflow import finetune as ft
torch.set_num_threads(1)
settings = json.load(open('/tmp/demo3/results/finetune/squad/pretrained/seed1/metrics.json'))['settings']
variant = sys.argv[1]
if variant == "hf_loss":  # the loss before this change: transformers' head, padding in the softmax
    ft.Squad.training_loss = staticmethod(lambda model, batch: model(**batch).loss)
for seed in [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else (1, 2, 3):
    with tempfile.TemporaryDirectory() as tmp:
        r = ft.finetune(task="squad", model_dir="/tmp/demo3/results/pretrain/model",
                        train_file="/tmp/demo3/results/data/squad/train.json",
                        validation_file="/tmp/demo3/results/data/squad/validation.json", out_dir=tmp, seed=seed,
                        device="cpu", settings={**settings, "unpad": variant == "unpad"})
    print(json.dumps({"variant": variant, "seed": seed, "em": round(r["exact_match"], 2),
                      "em_per_epoch": [round(e["exact_match"], 1) for e in r["epochs"]],
                      "loss": [round(e["train_loss"], 3) for e in r["epochs"]]}), flush=True)
