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
        hub_splits=p.hub_splits or ("train", "validation"),
        validation_fraction=p.validation_fraction,
        split_unit=p.split_unit,
        max_lines=p.max_lines,
        max_line_chars=p.max_line_chars,
        seed=p.seed,
        out_train=snakemake.output.train,
        out_validation=snakemake.output.validation,
        out_stats=snakemake.output.stats,
    )
