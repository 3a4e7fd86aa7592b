#!/bin/bash
# usage: run.sh TREE LABEL  -> a fresh default run of TREE, results copied to /tmp/ovh/LABEL
set -e
TREE=$1; LABEL=$2
cd $TREE
rm -rf results resources logs .snakemake
export PYTHONPATH=$TREE/src OMP_NUM_THREADS=1
start=$(date +%s.%N)
/usr/bin/time -v /work/main/.venv/bin/snakemake --cores 1 --resources gpu=1 > /tmp/ovh/$LABEL.log 2>&1
end=$(date +%s.%N)
echo "total_wall_s $(echo "$end - $start" | bc)" > /tmp/ovh/$LABEL.total
mkdir -p /tmp/ovh/$LABEL && cp -r results /tmp/ovh/$LABEL/
