"""Short CPU pretraining on the wikibooks blocks through the stage function:
    OMP_NUM_THREADS=2 PYTHONPATH=src /usr/bin/time -v python docs/results/cpu-data-path/wikibooks/pretrain_short.py results/wikibooks OUT
"""
import logging, sys
from bertflow.pretrain import pretrain
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
R, O = sys.argv[1], sys.argv[2]
pretrain(tokenizer_dir=f"{R}/tokenizer", blocks_dir=f"{R}/blocks",
         outputs={"model": f"{O}/model", "perplexity": f"{O}/perplexity.csv", "plot": f"{O}/perplexity.png", "info": f"{O}/train_info.json"},
         train={"preset": "tiny", "seq_len": 128, "time_budget": 2, "batch_size": 32, "learning_rate": 1e-3,
                "warmup_ratio": 0.06, "log_every_steps": 50, "eval_every_steps": 200, "max_eval_blocks": 500},
         device="cpu", seed=1234, checkpoint_dir=f"{O}/checkpoints")
