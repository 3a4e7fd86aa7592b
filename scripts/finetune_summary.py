"""Stage: aggregate one model's task metrics over seeds (mean, standard deviation)."""
from bertflow.summary import summarize_seeds
from bertflow.stage import stage

with stage(snakemake):
    summarize_seeds(list(snakemake.input), snakemake.output[0])
