wildcard_constraints:
    task="|".join(TASKS),
    model="[A-Za-z0-9_.-]+",
    seed=r"\d+",


localrules:
    download_task_data,
    download_model,


rule download_task_data:
    """Save a task's Hub dataset (glue/<task>, squad) to disk; the only fine-tuning step with network."""
    output:
        directory(results("downloads", "{task}")),
    log:
        logs("download_{task}"),
    benchmark:
        bench("download_{task}")
    conda:
        ENV
    params:
        hub=hub_dataset,
    script:
        "../scripts/download_task_data.py"


rule download_model:
    """Snapshot of a baseline model from the Hub (finetune.baselines: name -> model id)."""
    output:
        directory(results("downloads", "models", "{model}")),
    log:
        logs("download_model_{model}"),
    benchmark:
        bench("download_model_{model}")
    conda:
        ENV
    params:
        repo_id=lambda wildcards: FINETUNE["baselines"][wildcards.model],
    script:
        "../scripts/download_model.py"


rule prepare_task_data:
    """Validated, normalised task data: a TSV (text or pair, label) for classification and regression
    tasks, official v1.1 JSON for SQuAD."""
    input:
        unpack(task_data_sources),
    output:
        train=results("data", "{task}", "train.{ext}"),
        validation=results("data", "{task}", "validation.{ext}"),
    log:
        logs("prepare_{task}_{ext}"),
    benchmark:
        bench("prepare_{task}_{ext}")
    wildcard_constraints:
        ext="tsv|json",
    conda:
        ENV
    params:
        data=task_data_params,
    script:
        "../scripts/prepare_task_data.py"


rule finetune:
    """Fine-tune one model on one task with one seed; evaluate after every epoch.

    The run's checkpoint (seed{seed}/checkpoints, written after each epoch but the last and on
    SIGTERM) is not a declared output, so a killed or failed job keeps it and the rerun resumes.
    """
    input:
        model=finetune_model_dir,
        train=lambda wildcards: task_data(wildcards.task, "train"),
        validation=lambda wildcards: task_data(wildcards.task, "validation"),
    output:
        metrics=results("finetune", "{task}", "{model}", "seed{seed}", "metrics.json"),
        predictions=results("finetune", "{task}", "{model}", "seed{seed}", "predictions.json"),
        epochs=results("finetune", "{task}", "{model}", "seed{seed}", "epochs.csv"),
        model=directory(finetuned_model_dir("{task}", "{model}", "{seed}")),
    log:
        logs("finetune_{task}_{model}_seed{seed}"),
    benchmark:
        bench("finetune_{task}_{model}_seed{seed}")
    conda:
        ENV
    threads: workflow.cores
    resources:
        gpu=gpus(FINETUNE["num_processes"]),
    params:
        settings=task_train_settings,
        definition=task_definition,
        device=config["device"],
        num_processes=FINETUNE["num_processes"],
    script:
        "../scripts/finetune.py"


rule finetune_summary:
    """Mean and standard deviation over finetune.seeds."""
    input:
        seed_metrics,
    output:
        results("finetune", "{task}", "{model}", "summary.json"),
    log:
        logs("finetune_summary_{task}_{model}"),
    benchmark:
        bench("finetune_summary_{task}_{model}")
    conda:
        ENV
    script:
        "../scripts/finetune_summary.py"


FINAL_TARGETS.extend(finetune_summary(task, model) for task in TASKS for model in finetune_models())
