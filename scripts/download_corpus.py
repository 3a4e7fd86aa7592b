"""Stage: save a Hub dataset to disk (local rule; the only corpus step with network access)."""
from bertflow.corpus import download_hub_corpus
from bertflow.stage import stage

with stage(snakemake, network=True):
    download_hub_corpus(out_dir=snakemake.output[0], **snakemake.params.hub)
