"""Attention row by row against attention on the padded batch, inside the unpadded encoder: the
probe that set bertflow.unpadding.ROW_ATTENTION_MIN_WIDTH. Tiny BERT shape (hidden 128, 2 layers),
1 thread, training steps on synthetic token ids with SST-2-like lengths (batch 32, width <= 64) or
SQuAD-like lengths (batch 16, width <= 384, from the real contexts' word counts); the two variants
alternate twice in one process (rough: for the decision, not a benchmark).

    PYTHONPATH=src python docs/results/cpu-finetune-bench/row_attention_probe.py sst2|squad
"""
import torch, time, sys, numpy as np
from transformers import BertConfig, BertForSequenceClassification, BertForQuestionAnswering
import bertflow.unpadding as up


def squad_lengths():
    """Window lengths estimated from word counts (1.3 tokens per word, capped at 384), SQuAD dev part 1."""
    import json
    data = json.load(open('/work/shared/data/squad/squad-v1.1-dev-part1.json'))['data']
    return np.array([min(384, int(len(p['context'].split()) * 1.3 + len(q['question'].split()) * 1.3 + 3))
                     for a in data for p in a['paragraphs'] for q in p['qas']])


torch.set_num_threads(1)
cfg = BertConfig(vocab_size=8000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)
task = sys.argv[1]
if task == "sst2":
    B = 32; rng=torch.Generator().manual_seed(0)
    lengths = (torch.distributions.Gamma(3.0, 0.25).sample((2000,)).long() + 3).clamp(max=64); cls = BertForSequenceClassification
else:
    B = 16; lengths = torch.from_numpy(np.random.default_rng(0).choice(squad_lengths(), 2000)); cls = BertForQuestionAnswering

def batch(i):
    ln = lengths[i*B:(i+1)*B]; W = int(ln.max())
    mask = (torch.arange(W) < ln[:, None]).long(); ids = torch.randint(5, 8000, (B, W)) * mask
    kw = dict(input_ids=ids, attention_mask=mask)
    if task == "sst2": kw["labels"] = torch.randint(0, 2, (B,))
    else: kw["start_positions"] = torch.randint(0, 10, (B,)); kw["end_positions"] = kw["start_positions"] + 2
    return kw
steps = 40 if task == "sst2" else 12
for mode in ["padded-attn", "row-attn"] * 2:
    # the threshold is read per batch: 10**9 = always the padded batch, 0 = always row by row
    up.ROW_ATTENTION_MIN_WIDTH = 10**9 if mode == "padded-attn" else 0
    torch.manual_seed(0); m = cls(cfg).train(); up.unpad_encoder(m, pooled_only=task == "sst2")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    t = time.perf_counter()
    for i in range(steps):
        loss = m(**batch(i)).loss; loss.backward(); opt.step(); opt.zero_grad()
    print(mode, f"{(time.perf_counter()-t)/steps*1000:.1f} ms/step", loss.item())
