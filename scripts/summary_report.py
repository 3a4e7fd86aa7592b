"""Stage: results/report.md gathering every stage's results."""
from bertflow.stage import stage
from bertflow.summary import write_summary

with stage(snakemake):
    write_summary(
        out=snakemake.output.md,
        leaderboard_csv=snakemake.output.leaderboard,
        perplexity_csv=snakemake.input.perplexity,
        perplexity_png=snakemake.input.plot,
        tokenizer_report=snakemake.input.tokenizer_report,
        card=snakemake.input.card,
        param_reports=snakemake.params.param_reports,
        models=snakemake.params.models,
        tasks=snakemake.params.tasks,
        benchmark_csv=snakemake.input.benchmark[0] if snakemake.input.benchmark else None,
        title=snakemake.params.title,
        benchmark_missing=snakemake.params.benchmark_missing,
    )
