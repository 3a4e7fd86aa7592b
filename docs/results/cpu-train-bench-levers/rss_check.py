"""Current RSS (not the peak) of the pretraining loop every 60 steps, with and without dropout: is the
higher peak RSS of the no-dropout runs a steady growth?  OMP_NUM_THREADS=1 PYTHONPATH=src python rss_check.py nodrop|none"""
import os, sys, torch
from bertflow.pretrain import Pretrainer, Settings, Vocab
over = {"none": {}, "nodrop": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        "hidden0": {"hidden_dropout_prob": 0.0}}[sys.argv[1]]
def rss(): return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
blocks = torch.randint(5, 16000, (32 * 50, 128), generator=torch.Generator().manual_seed(0))
s = Settings(preset="tiny", model=over, seq_len=128, epochs=1, max_steps=400, batch_size=32, max_eval_blocks=1, log_every_steps=10**9)
t = Pretrainer(s, vocab=Vocab(16000, 0, 4, (0, 1, 2, 3, 4)), blocks={"train": blocks, "validation": blocks[:1]}, meta={}, device="cpu", checkpoint_dir=os.devnull)
out = []
for step in range(240):
    t.optimizer_step(0, step % t.steps_per_epoch); t.progress.global_step += 1
    if step % 60 == 59: out.append(rss())
print(sys.argv[1], "RSS MiB every 60 steps:", out, flush=True)
