#!/usr/bin/env bash
# Scaling on a GPU: pretraining throughput vs model size and sequence length (tokens per step held
# at 16,384), and the inference benchmark stage on randomly initialised small and base models.
#   PYTHONPATH=src bash tools/gpu_scaling.sh OUTDIR
set -euo pipefail
out=${1:-scaling}
mkdir -p "$out"
for seq in 128 256 512; do
  python3 tools/gpu_levers.py --presets mini small medium base --seq-len $seq --batch-size $((16384 / seq)) \
    --steps 30 --levers "ours (all levers on)" --out "$out/scaling_seq$seq.json"
done
python3 - "$out" <<'PY'
import sys
from transformers import BertConfig, BertForMaskedLM
from bertflow.inference import benchmark_models
from bertflow.presets import architecture
out = sys.argv[1]
models = {}
for preset in ("small", "base"):
    BertForMaskedLM(BertConfig(vocab_size=30522, **architecture(preset))).save_pretrained(f"/tmp/models/{preset}")
    models[preset] = f"/tmp/models/{preset}"
plots = {k: f"{out}/{k}.png" for k in ("latency_vs_seq_len", "memory_vs_seq_len", "memory_vs_batch_size")}
benchmark_models(models=models, out_csv=f"{out}/inference.csv", out_json=f"{out}/inference.json", plots=plots,
                 seq_lens=[32, 128, 512], batch_sizes=[1, 8, 32, 128], fixed_batch=8, fixed_seq_len=128,
                 warmup=5, repeats=20, device="cuda")
PY
