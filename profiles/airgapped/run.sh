#!/usr/bin/env bash
# Run the workflow on an offline node from a bundle made by bundle.sh: unpack its Python packages
# once, put them and this checkout's src/ on PYTHONPATH (site.sh), then `python3 -m snakemake ARGS...`
# with the node's own Python (the one that has torch).
#
#   profiles/airgapped/run.sh BUNDLE_DIR --cores 16 --resources gpu=1 --configfile config/gpu_wikibooks.yaml
set -euo pipefail
bundle=${1:?usage: run.sh BUNDLE_DIR SNAKEMAKE_ARGS...}
shift
source "$(dirname "$0")/site.sh" "$bundle"
exec python3 -m snakemake "$@"
