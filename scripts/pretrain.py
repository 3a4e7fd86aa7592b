"""Stage: pretrain BERT (masked LM) from scratch; one process, or N through torchrun (pretrain.num_processes)."""
from bertflow.distributed import run
from bertflow.pretrain import pretrain
from bertflow.stage import stage

with stage(snakemake):
    run(
        pretrain,
        dict(
            tokenizer_dir=snakemake.input.tokenizer,
            blocks_dir=snakemake.input.blocks,
            outputs=dict(snakemake.output.items()),
            train=snakemake.params.train,
            device=snakemake.params.device,
            seed=snakemake.params.seed,
            checkpoint_dir=snakemake.params.checkpoint_dir,
        ),
        snakemake.params.num_processes,
    )
