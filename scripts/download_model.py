"""Stage: save a baseline model from the Hub with save_pretrained (local rule, needs network)."""
from bertflow.models import download_model
from bertflow.stage import stage

with stage(snakemake, network=True, uses_torch=True):
    download_model(snakemake.params.repo_id, snakemake.output[0])
