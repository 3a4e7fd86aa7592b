"""Stage: fine-tune one model on one task (a GLUE task, SQuAD or a custom task) with one seed; one
process, or N through torchrun (finetune.num_processes)."""
from pathlib import Path

from bertflow.distributed import run
from bertflow.finetune import finetune
from bertflow.stage import stage

with stage(snakemake, uses_torch=True):
    run(
        finetune,
        dict(
            task=snakemake.wildcards.task,
            model_name=snakemake.wildcards.model,
            model_dir=snakemake.input.model,
            train_file=snakemake.input.train,
            validation_file=snakemake.input.validation,
            out_dir=str(Path(snakemake.output.metrics).parent),
            settings=snakemake.params.settings,
            definition=snakemake.params.definition,
            seed=int(snakemake.wildcards.seed),
            device=snakemake.params.device,
            # Tokenized features, shared by every seed of this task and model (keyed by tokenizer, data, settings).
            features_cache=str(Path(snakemake.output.metrics).parent.parent / "features"),
            # Read from the config, not params: switching event files on or off must not rerun training.
            tensorboard=snakemake.config["finetune"]["tensorboard"],
            # Not a declared output, so a killed or failed job keeps it and the rerun resumes from it.
            checkpoint_dir=str(Path(snakemake.output.metrics).parent / "checkpoints"),
        ),
        snakemake.params.num_processes,
    )
