#!/usr/bin/env bash
# Run the workflow on an offline node from a bundle made by bundle.sh: unpack its Python packages
# once, put them and this checkout's src/ on PYTHONPATH, then `python3 -m snakemake ARGS...`
# with the node's own Python (the one that has torch).
#
#   profiles/airgapped/run.sh BUNDLE_DIR --cores 16 --resources gpu=1 --configfile config/gpu_wikibooks.yaml
set -euo pipefail
bundle=${1:?usage: run.sh BUNDLE_DIR SNAKEMAKE_ARGS...}
shift
site=${BERTFLOW_SITE:-/tmp/bertflow-site}
if [ ! -f "$site/.unpacked" ]; then
    mkdir -p "$site"
    tar -C "$site" -xzf "$bundle/site-packages.tar.gz"
    touch "$site/.unpacked"
fi
export PYTHONPATH="$site:$(pwd)/src${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m snakemake "$@"
