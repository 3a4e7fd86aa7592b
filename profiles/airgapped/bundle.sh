#!/usr/bin/env bash
# Build a folder that lets an offline GPU node (Python + torch + transformers preinstalled, no
# network) run the workflow: the Python packages it lacks, installed for its Python version, plus
# the data files named in DATA. Run on a machine with PyPI access; copy the folder to the node.
#
#   profiles/airgapped/bundle.sh OUT_DIR [PYTHON_VERSION] [DATA...]
#   e.g. profiles/airgapped/bundle.sh .gpu 3.12 ../shared/data/sst2 ../shared/data/squad
#
# On the node: profiles/airgapped/run.sh OUT_DIR SNAKEMAKE_ARGS... (unpacks the packages, sets PYTHONPATH);
# profiles/airgapped/gpu_sweeps.sh for the sweeps.
set -euo pipefail
out=${1:?usage: bundle.sh OUT_DIR [PYTHON_VERSION] [DATA...]}
pyver=${2:-3.12}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$out"
site=$(mktemp -d)
# Exact pins from requirements.txt for every package in missing.txt (what such a node lacks).
pins=$(grep -v '^#' "$here/missing.txt" | while read -r name; do
    [ -n "$name" ] || continue
    grep -i -E "^${name//[-_]/[-_]}==" "$repo/requirements.txt" || { echo "missing.txt: $name has no pin in requirements.txt" >&2; exit 1; }
done)
# Binary wheels for the node's Python and platform; --no-deps: missing.txt names each one needed.
python3 -m pip install --quiet --no-deps --no-compile --prefer-binary --target "$site" \
    --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    $pins
rm -rf "$site"/bin
tar -C "$site" -czf "$out/site-packages.tar.gz" .
rm -rf "$site"
for data in "$@"; do
    mkdir -p "$out/data"
    cp -rL "$data" "$out/data/"
done
du -sh "$out"
