#!/usr/bin/env bash
# The GPU sweeps, each one command of at most about 10 minutes on an offline GPU node, with the
# bundle and data carried in BUNDLE_DIR (docs/results/gpu-wikibooks/README.md, "Running the sweeps
# on your GPU node"):
#
#   profiles/airgapped/gpu_sweeps.sh BUNDLE_DIR OUT_DIR WHAT [ARGS...]
#     size            the data stages (Snakemake, only what is missing), then
#                     python -m bertflow.bench.size_sweep --config CONFIG ARGS
#     finetune        the data stages, pretraining and the task data (Snakemake), then
#                     python -m bertflow.bench.finetune_sweep --config CONFIG ARGS
#     finetune_bench  python -m bertflow.bench.finetune_bench --device cuda on the carried SST-2 and
#                     SQuAD files, then ARGS
#     unpad_check     tests/test_unpadding.py on the GPU (BERTFLOW_TEST_DEVICE, default cuda): the
#                     unpadded encoder against transformers' padded forward, logits and gradients
#
# Everything runs under one deadline, SWEEP_LIMIT_S seconds (default 540), so that a cut leaves time
# to copy the results: the stages checkpoint on SIGTERM, and the same command again goes on from
# there (Snakemake reruns nothing finished; the sweeps skip finished runs and resume a cut
# pretraining). Exit code 75: cut by the deadline, run the same command again (on the same warm
# machine: results/ stays there between calls). Copied to OUT_DIR: the results without weights,
# checkpoints or features, the stage logs, Snakemake's and the sweep's output, device.txt.
# SWEEP_CONFIG: the workflow config (default config/gpu_wikibooks.yaml).
set -uo pipefail
usage="usage: gpu_sweeps.sh BUNDLE_DIR OUT_DIR size|finetune|finetune_bench|unpad_check [ARGS...]"
bundle=${1:?$usage}
out=${2:?$usage}
what=${3:?$usage}
shift 3
config=${SWEEP_CONFIG:-config/gpu_wikibooks.yaml}
deadline=$((SECONDS + ${SWEEP_LIMIT_S:-540}))
mkdir -p "$out"
source "$(dirname "$0")/site.sh" "$bundle"
results=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get('results_dir', 'results'))" "$config") || exit 2
# The config's data paths (../shared/data/...) lead to the carried data.
if [ ! -e ../shared/data ] || [ -L ../shared/data ]; then
    mkdir -p ../shared && ln -sfn "$(cd "$bundle" && pwd)/data" ../shared/data
fi

seconds_left() { echo $((deadline - SECONDS > 1 ? deadline - SECONDS : 1)); }
# A step under the deadline: SIGTERM to its whole process group (the stages checkpoint), KILL 30 s later.
bounded() { timeout -k 30 -s TERM "$(seconds_left)" "$@"; }

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)"
    echo "cpus $(nproc)"
} >"$out/device.txt" 2>&1
cat "$out/device.txt"

case $what in
size)
    targets=("$results/tokenizer" "$results/blocks")
    command=(python3 -m bertflow.bench.size_sweep --config "$config" "$@") ;;
finetune)
    targets=("$results/pretrain/train_info.json" "$results/data/sst2/train.tsv" "$results/data/sst2/validation.tsv"
             "$results/data/squad/train.json" "$results/data/squad/validation.json")
    command=(python3 -m bertflow.bench.finetune_sweep --config "$config" "$@") ;;
finetune_bench)
    targets=()
    command=(python3 -m bertflow.bench.finetune_bench --device cuda --sst2-dir ../shared/data/sst2
             --squad-file ../shared/data/squad/squad-v1.1-dev-part1.json --out "$results/finetune_bench" "$@") ;;
unpad_check)
    targets=()
    command=(env "BERTFLOW_TEST_DEVICE=${BERTFLOW_TEST_DEVICE:-cuda}" python3 -m pytest -p no:cacheprovider -v
             tests/test_unpadding.py "$@") ;;
*)
    echo "$usage" >&2
    exit 2 ;;
esac

code=0
if [ ${#targets[@]} -gt 0 ]; then
    # --rerun-incomplete: a job killed by an earlier deadline runs again (pretraining from its checkpoint).
    bounded python3 -m snakemake "${targets[@]}" --cores "$(nproc)" --resources gpu=1 --rerun-incomplete \
        --configfile "$config" \
        2>&1 | tee -a "$out/snakemake.log"
    code=${PIPESTATUS[0]}
fi
if [ "$code" -eq 0 ]; then
    bounded "${command[@]}" 2>&1 | tee -a "$out/$what.log"
    code=${PIPESTATUS[0]}
fi

# Only what a GPU node can hand back in bulk is copied: no weights, checkpoints, tokenized features or event files.
copy_results() {
    [ -d "$results" ] || return 0
    (cd "$results" && find "$@" -type f ! -path '*/model/*' ! -path '*/model.partial/*' ! -path '*/checkpoints/*' \
        ! -path '*/stale-checkpoints/*' ! -path '*/features/*' ! -path '*/tensorboard/*' -print0 2>/dev/null |
        tar --null -cf - -T -) | tar -C "$out" -xf -
}
case $what in
size) copy_results size_sweep logs benchmarks ;;
finetune) copy_results finetune_sweep pretrain/train_info.json pretrain/perplexity.csv logs benchmarks ;;
finetune_bench) copy_results finetune_bench ;;
unpad_check) ;;  # its log, unpad_check.log, is the result
esac

if [ "$code" -eq 124 ] || [ "$code" -eq 137 ] || [ "$code" -eq 143 ]; then
    echo "cut by the ${SWEEP_LIMIT_S:-540}-second deadline (exit $code): run the same command again to go on"
    exit 75
fi
exit "$code"
