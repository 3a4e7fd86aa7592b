"""Stage: parameter report (JSON + Markdown) of one saved model."""
from bertflow.params_report import write_params_report
from bertflow.stage import stage

with stage(snakemake):
    task = getattr(snakemake.wildcards, "task", None)
    name = f"{task}/{snakemake.wildcards.model}" if task else snakemake.wildcards.model
    write_params_report(snakemake.input.model, snakemake.output.json, snakemake.output.md, name=name)
