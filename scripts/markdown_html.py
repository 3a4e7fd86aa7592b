"""Stage: a markdown result as a self-contained HTML page for `snakemake --report`."""
from bertflow.html_page import write_markdown_page
from bertflow.stage import stage

with stage(snakemake):
    write_markdown_page(snakemake.input.md, snakemake.output.html, snakemake.params.title)
