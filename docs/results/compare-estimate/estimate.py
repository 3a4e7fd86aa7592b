"""Estimated fine-tuning time of config/compare.yaml on one GPU, from the examples/s measured on an H200.

Measured: BERT-Small (4 layers, d 512, d_ff 2048) fine-tuned by the workflow on one H200, bf16,
padded forward (docs/results/gpu-wikibooks/finetune/*_metrics.json: training examples / windows per
second of the training loop). Every other model's rate is that rate scaled by the training FLOPs
per token: 6 x (non-embedding parameters) + 12 x layers x d_model x seq_len (attention scores and
their weighted sum, forward and backward). A bigger model uses the GPU better than BERT-Small does,
so the scaled rate is a lower bound and the times below are upper bounds. Not modelled: DeBERTa's
relative-position attention terms (it is slower than BERT of its shape), ModernBERT's local
attention (faster at long inputs), different tokenizers' lengths, model download and job start-up.

    python docs/results/compare-estimate/estimate.py > docs/results/compare-estimate/estimate.md
"""

import json
import statistics
from pathlib import Path

MEASURED = Path(__file__).resolve().parents[1] / "gpu-wikibooks" / "finetune"
SST2_TRAIN, SQUAD_TRAIN_WINDOWS, EPOCHS = 67_349, 88_641, 2  # SQuAD v1.1 train: about 88,600 windows at 384 / 128 (WordPiece)
SEQ = {"sst2": 64, "squad": 384}


def layer(d, f, groups=None):
    """Non-embedding parameters of one layer (weights only; biases and norms are noise here)."""
    if groups:  # SqueezeBERT: grouped q, k, v, post-attention, intermediate, output convolutions
        q, k, v, post, inter, out = groups
        return d * d // q + d * d // k + d * d // v + d * d // post + d * f // inter + f * d // out
    return 4 * d * d + 2 * d * f


# name: (layers, d_model, per-layer non-embedding parameters), from each model's config.json on the Hub.
MODELS = {
    "BERT-Small shape (measured)": (4, 512, layer(512, 2048)),
    "distilbert-base-cased / -uncased": (6, 768, layer(768, 3072)),
    "distilroberta-base": (6, 768, layer(768, 3072)),
    "bert-base-cased / -uncased": (12, 768, layer(768, 3072)),
    "roberta-base": (12, 768, layer(768, 3072)),
    "xlm-roberta-base": (12, 768, layer(768, 3072)),
    "electra-small-discriminator": (12, 256, layer(256, 1024)),
    "electra-base-discriminator": (12, 768, layer(768, 3072)),
    "squeezebert-uncased": (12, 768, layer(768, 3072, groups=(4, 4, 4, 1, 4, 4))),
    "deberta-v3-small": (6, 768, layer(768, 3072)),
    "deberta-v3-base": (12, 768, layer(768, 3072)),
    "modernbert-base": (22, 768, 4 * 768 * 768 + 3 * 768 * 1152),  # fused QKV + O; gated feed-forward
    "bert-large-cased / -uncased": (24, 1024, layer(1024, 4096)),
    "roberta-large": (24, 1024, layer(1024, 4096)),
    "electra-large-discriminator": (24, 1024, layer(1024, 4096)),
    "deberta-v3-large": (24, 1024, layer(1024, 4096)),
}
COUNT = {"distilbert-base-cased / -uncased": 2, "bert-base-cased / -uncased": 2, "bert-large-cased / -uncased": 2}


def flops_per_token(layers, d, per_layer, seq):
    return 6 * layers * per_layer + 12 * layers * d * seq


def measured_rate(task):
    rates = []
    for path in sorted(MEASURED.glob(f"{task}_seed*_metrics.json")):
        run = json.loads(path.read_text())
        rates.append(run["train_features"] * len(run["epochs"]) / sum(e["train_seconds"] for e in run["epochs"]))
    return statistics.median(rates), len(rates)


def main():
    base = MODELS["BERT-Small shape (measured)"]
    rates = {task: measured_rate(task) for task in SEQ}
    print("| model | SST-2 ex/s | SQuAD windows/s | SST-2 2 epochs | SQuAD 2 epochs | both, per seed |")
    print("|---|---:|---:|---:|---:|---:|")
    total = 0.0
    for name, shape in MODELS.items():
        speeds, times = {}, {}
        for task, seq in SEQ.items():
            speeds[task] = rates[task][0] * flops_per_token(*base, seq) / flops_per_token(*shape, seq)
            times[task] = (SST2_TRAIN if task == "sst2" else SQUAD_TRAIN_WINDOWS) * EPOCHS / speeds[task] / 60
        both = times["sst2"] + times["squad"]
        total += both * COUNT.get(name, 1)
        print(f"| {name} | {speeds['sst2']:,.0f} | {speeds['squad']:,.0f} | {times['sst2']:.1f} min "
              f"| {times['squad']:.1f} min | {both:.0f} min |")
    print(f"\nMeasured (median of {rates['sst2'][1]} seeds): SST-2 {rates['sst2'][0]:,.0f} examples/s, "
          f"SQuAD {rates['squad'][0]:,.0f} windows/s (BERT-Small shape, H200, bf16, padded forward).")
    print(f"All 19 models, one seed each: about {total:.0f} min = {total / 60:.1f} h of training loop "
          "(an estimate, an upper bound for the larger models).")


if __name__ == "__main__":
    main()
