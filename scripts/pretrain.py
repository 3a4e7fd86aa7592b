"""Stage: pretrain BERT (masked LM) from scratch; one process, or N through a distributed launcher."""
from bertflow.pretrain import pretrain
from bertflow.stage import stage

with stage(snakemake):
    pretrain(
        tokenizer_dir=snakemake.input.tokenizer,
        blocks_dir=snakemake.input.blocks,
        outputs=dict(snakemake.output.items()),
        train=snakemake.params.train,
        device=snakemake.params.device,
        seed=snakemake.params.seed,
        checkpoint_dir=snakemake.params.checkpoint_dir,
    )
