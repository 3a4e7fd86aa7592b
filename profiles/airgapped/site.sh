# Sourced by run.sh and gpu_sweeps.sh: unpack a bundle's Python packages (bundle.sh) once, then put
# them and this checkout's src/ on PYTHONPATH, for the node's own Python (the one that has torch).
#   source profiles/airgapped/site.sh BUNDLE_DIR
bundle_site=${BERTFLOW_SITE:-/tmp/bertflow-site}
if [ ! -f "$bundle_site/.unpacked" ]; then
    mkdir -p "$bundle_site"
    tar -C "$bundle_site" -xzf "${1:?usage: source site.sh BUNDLE_DIR}/site-packages.tar.gz"
    touch "$bundle_site/.unpacked"
fi
export PYTHONPATH="$bundle_site:$(pwd)/src${PYTHONPATH:+:$PYTHONPATH}"
