"""Stage: save a fine-tuning task's Hub dataset to disk (local rule, needs network)."""
from bertflow.stage import stage
from bertflow.task_data import download_hub_dataset

with stage(snakemake, network=True):
    hub = snakemake.params.hub
    download_hub_dataset(hub["name"], hub["config"], snakemake.output[0])
