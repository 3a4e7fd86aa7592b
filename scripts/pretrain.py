"""Stage: pretrain BERT (masked LM) from scratch; one process, or N through torchrun (pretrain.num_processes)."""
from bertflow.distributed import run
from bertflow.pretrain import pretrain
from bertflow.stage import stage

with stage(snakemake, uses_torch=True):
    run(
        pretrain,
        dict(
            tokenizer_dir=snakemake.input.tokenizer,
            blocks_dir=snakemake.input.blocks,
            outputs=dict(snakemake.output.items()),
            # Watch-only keys come from the config, not params: changing them must not rerun the stage.
            train={**snakemake.params.train, **{k: snakemake.config["pretrain"][k] for k in snakemake.params.watch_keys}},
            device=snakemake.params.device,
            seed=snakemake.params.seed,
            checkpoint_dir=snakemake.params.checkpoint_dir,
        ),
        snakemake.params.num_processes,
    )
