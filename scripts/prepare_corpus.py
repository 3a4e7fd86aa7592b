"""Stage: write the train/validation text split from the configured corpus source."""
from bertflow.corpus import prepare_corpus
from bertflow.stage import stage

with stage(snakemake):
    p = snakemake.params
    prepare_corpus(
        source=p.source,
        generated=p.generated,
        train_files=snakemake.input.get("train"),
        validation_files=snakemake.input.get("validation"),
        hub_dir=snakemake.input.get("hub"),
        hub_text_column=p.hub_text_column,
        validation_fraction=p.validation_fraction,
        max_lines=p.max_lines,
        seed=p.seed,
        out_train=snakemake.output.train,
        out_validation=snakemake.output.validation,
        out_stats=snakemake.output.stats,
    )
