"""Stage: validate and normalise one task's train/validation data."""
from bertflow import task_data
from bertflow.stage import stage
from bertflow.tasks import GLUE_TASKS, custom_task

with stage(snakemake):
    data, task = snakemake.params.data, snakemake.wildcards.task
    files = dict(snakemake.input.items())
    outputs = dict(out_train=snakemake.output.train, out_validation=snakemake.output.validation)
    if data["source"] == "custom":
        section = data["custom"]
        task_data.prepare_text_task(custom_task(task, section), source="custom", local_files=files,
                                    section=section, **outputs)
    else:
        hub = dict(hub_dir=files.get("hub"),
                   hub_splits={"train": data["hub"]["train_split"], "validation": data["hub"]["validation_split"]})
        if task == "squad":
            task_data.prepare_squad(source=data["source"], generated=data["generated"],
                                    local_files={**data["local"], **files}, **hub, **outputs,
                                    version_2_with_negative=data["version_2_with_negative"])
        else:
            task_data.prepare_text_task(GLUE_TASKS[task], source=data["source"], local_files=files,
                                        generated=data.get("generated"), **hub, **outputs)
