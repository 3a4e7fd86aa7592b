"""Stage: train the WordPiece tokenizer and write its report."""
from bertflow.stage import stage
from bertflow.tokenizer import train_tokenizer

with stage(snakemake):
    train_tokenizer(
        train_file=snakemake.input.train,
        validation_file=snakemake.input.validation,
        out_dir=snakemake.output.tokenizer,
        out_report=snakemake.output.report,
        seed=snakemake.params.seed,
        **snakemake.params.tokenizer,
    )
