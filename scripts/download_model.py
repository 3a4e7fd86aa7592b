"""Stage: snapshot a baseline model from the Hub (local rule, needs network)."""
from huggingface_hub import snapshot_download

from bertflow.stage import stage

with stage(snakemake, network=True):
    snapshot_download(repo_id=snakemake.params.repo_id, local_dir=snakemake.output[0])
