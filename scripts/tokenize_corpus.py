"""Stage: tokenize the corpus once and pack it into fixed-length blocks."""
from bertflow.blocks import build_blocks
from bertflow.stage import stage

with stage(snakemake):
    build_blocks(
        tokenizer_dir=snakemake.input.tokenizer,
        train_file=snakemake.input.train,
        validation_file=snakemake.input.validation,
        seq_len=snakemake.params.seq_len,
        out_dir=snakemake.output.blocks,
    )
