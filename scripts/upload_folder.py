"""Stage: assemble the exact folder the upload step pushes."""
from bertflow.hub import assemble_folder, upload_layout
from bertflow.stage import stage

with stage(snakemake):
    assemble_folder(upload_layout(snakemake.input, snakemake.params.tasks), snakemake.output.folder)
