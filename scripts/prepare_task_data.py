"""Stage: validate and normalise one task's train/validation data."""
from bertflow import task_data
from bertflow.stage import stage

with stage(snakemake):
    data = snakemake.params.data
    prepare = {"sst2": task_data.prepare_sst2, "squad": task_data.prepare_squad}[snakemake.wildcards.task]
    prepare(
        source=data["source"],
        generated=data["generated"],
        local_files={**data["local"], **dict(snakemake.input.items())},
        hub_dir=snakemake.input.get("hub"),
        hub_splits={"train": data["hub"]["train_split"], "validation": data["hub"]["validation_split"]},
        out_train=snakemake.output.train,
        out_validation=snakemake.output.validation,
        **({"version_2_with_negative": data["version_2_with_negative"]} if "version_2_with_negative" in data else {}),
    )
