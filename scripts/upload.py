"""Stage: push the upload folder to the Hub, or write the dry-run receipt (upload.enabled false)."""
from bertflow.hub import upload_stage
from bertflow.stage import stage

with stage(snakemake, network=True):
    upload_stage(folder=snakemake.input.folder, receipt=snakemake.output.receipt, settings=snakemake.params.settings)
