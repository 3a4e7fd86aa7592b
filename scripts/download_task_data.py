"""Stage: save a fine-tuning task's Hub dataset to disk (local rule, needs network)."""
from bertflow.stage import stage
from bertflow.task_data import download_hub_dataset

with stage(snakemake, network=True):
    download_hub_dataset(out_dir=snakemake.output[0], **snakemake.params.hub)
