"""Stage: the model card (README.md) of the pretrained model."""
from bertflow.card import write_model_card
from bertflow.stage import stage

with stage(snakemake):
    write_model_card(
        params_json=snakemake.input.params,
        train_info=snakemake.input.train_info,
        perplexity_csv=snakemake.input.perplexity,
        corpus_stats=snakemake.input.corpus_stats,
        tokenizer_report=snakemake.input.tokenizer_report,
        validation_text=snakemake.input.validation_text,
        tokenizer_dir=snakemake.input.tokenizer,
        finetune_summaries={task: snakemake.input[task] for task in snakemake.params.tasks},
        finetune_sources=snakemake.params.finetune_sources,
        settings=snakemake.params.settings,
        corpus=snakemake.params.corpus,
        repo_id=snakemake.params.repo_id,
        out=snakemake.output.card,
    )
