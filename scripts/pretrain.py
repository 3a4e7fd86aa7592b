"""Stage: pretrain BERT (masked LM) from scratch; one process, or N per node through torchrun
(pretrain.num_processes) on one node or, through srun, on pretrain.nodes nodes."""
from pathlib import Path

from bertflow.distributed import run
from bertflow.pretrain import check_world_fits, pretrain
from bertflow.stage import stage

with stage(snakemake, uses_torch=True):
    check_world_fits(snakemake.input.blocks, snakemake.config["pretrain"])  # before any node starts
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
        nodes=snakemake.params.nodes,
        # SPEC.json beside the checkpoints: on the shared file system that every node reads.
        shared_dir=str(Path(snakemake.params.checkpoint_dir).parent / "launch"),
    )
