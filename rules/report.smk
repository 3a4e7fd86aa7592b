CARD = config["card"]
# Parameter reports: `pretrained` and each baseline, then every fine-tuned `task/model`: name -> (json, md).
PARAM_REPORTS = {
    name: (results("reports", "params", f"{name}.json"), results("reports", "params", f"{name}.md"))
    for name in [*finetune_models(), *(f"{task}/{model}" for task in TASKS for model in finetune_models())]
}
# Fine-tuning results of our pretrained model that go into its card (model-index).
CARD_SUMMARIES = {task: finetune_summary(task, "pretrained") for task in TASKS} if CARD["include_finetune"] else {}
# Only what the card needs to name a dataset honestly: the source and the Hub id (name, config) of
# a Hub download, or of local files declared as a copy of a Hub dataset (local.dataset).
DATA_SOURCES = {
    name: {
        "source": section["source"],
        **({"hub": {k: section["hub"].get(k) for k in ("name", "config")}} if section["source"] == "hub" else {}),
        **(
            {"hub": {"name": section["local"]["dataset"], "config": section["local"].get("dataset_config")}}
            if section["source"] == "local" and section["local"].get("dataset")
            else {}
        ),
    }
    for name, section in [("corpus", CORPUS), *((task, FINETUNE[task]) for task in TASKS if not is_custom(task))]
}
# A task of the config's own (finetune.custom.<name>) always reads local files.
DATA_SOURCES.update({task: {"source": "local"} for task in TASKS if is_custom(task)})
# Leaderboard rows: model -> its parameter report and fine-tuning summaries.
LEADERBOARD = {
    model: {"params": PARAM_REPORTS[model][0], **{task: finetune_summary(task, model) for task in TASKS}}
    for model in finetune_models()
}
# The inference benchmark exists only when benchmark.enabled (and a rule in benchmark.smk makes it;
# without one the report says so instead of failing the whole run).
BENCHMARK_ENABLED = bool(config["benchmark"].get("enabled"))
BENCHMARK_CSV = (
    [inference_benchmark_csv()]
    if BENCHMARK_ENABLED and any(r.is_producer(inference_benchmark_csv()) for r in workflow.rules)
    else []
)


rule params_report:
    """Architecture, parameters per module (closed-form checked) and memory of a model fine-tuning starts from."""
    input:
        model=finetune_model_dir,
    output:
        json=results("reports", "params", "{model}.json"),
        md=results("reports", "params", "{model}.md"),
    log:
        logs("params_report_{model}"),
    benchmark:
        bench("params_report_{model}")
    wildcard_constraints:
        model="[A-Za-z0-9_.-]+",
    conda:
        ENV
    script:
        "../scripts/params_report.py"


rule params_report_finetuned:
    """The same report for a fine-tuned model (body plus its task head)."""
    input:
        # The first seed's weights: the architecture (and head) is the same for every seed.
        model=lambda wildcards: finetuned_model_dir(wildcards.task, wildcards.model, FINETUNE["seeds"][0]),
    output:
        json=results("reports", "params", "{task}", "{model}.json"),
        md=results("reports", "params", "{task}", "{model}.md"),
    log:
        logs("params_report_{task}_{model}"),
    benchmark:
        bench("params_report_{task}_{model}")
    wildcard_constraints:
        task="|".join(TASKS),
        model="[A-Za-z0-9_.-]+",
    conda:
        ENV
    script:
        "../scripts/params_report.py"


rule model_card:
    """README.md of the pretrained model: Hub metadata, architecture, training details, results."""
    input:
        **CARD_SUMMARIES,
        params=PARAM_REPORTS["pretrained"][0],
        train_info=rules.pretrain.output.info,
        perplexity=rules.pretrain.output.perplexity,
        corpus_stats=rules.prepare_corpus.output.stats,
        tokenizer_report=rules.train_tokenizer.output.report,
        # The fill-mask example: a sentence of the held-out text with a word the tokenizer knows masked.
        validation_text=rules.prepare_corpus.output.validation,
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        card=results("card", "README.md"),
    log:
        logs("model_card"),
    benchmark:
        bench("model_card")
    conda:
        ENV
    params:
        settings=dict(sorted(CARD.items())),  # key order in the config file must not look like a change
        corpus=DATA_SOURCES["corpus"],
        finetune_sources={task: DATA_SOURCES[task] for task in TASKS},
        repo_id=config["upload"]["repo_id"],
        tasks=list(CARD_SUMMARIES),
    script:
        "../scripts/model_card.py"


rule summary_report:
    """results/report.md: perplexity curve, tokenizer, parameters, leaderboard (and its CSV), GLUE score,
    vocabulary reduction, inference benchmark."""
    input:
        perplexity=rules.pretrain.output.perplexity,
        plot=rules.pretrain.output.plot,
        tokenizer_report=rules.train_tokenizer.output.report,
        card=rules.model_card.output.card,
        param_reports=[path for pair in PARAM_REPORTS.values() for path in pair],
        summaries=[path for files in LEADERBOARD.values() for path in files.values()],
        benchmark=BENCHMARK_CSV,
    output:
        md=summary_report_md(),
        leaderboard=report(
            results("leaderboard.csv"),
            caption="../docs/captions/leaderboard.rst",
            category="Summary",
        ),
    log:
        logs("summary_report"),
    benchmark:
        bench("summary_report")
    conda:
        ENV
    params:
        param_reports=PARAM_REPORTS,
        models=LEADERBOARD,
        tasks=TASKS,
        title=config["upload"]["repo_id"].split("/")[-1],
        benchmark_missing=inference_benchmark_csv() if BENCHMARK_ENABLED and not BENCHMARK_CSV else None,
    script:
        "../scripts/summary_report.py"


FINAL_TARGETS.extend([rules.model_card.output.card, summary_report_md(), rules.summary_report.output.leaderboard])


# ---- HTML pages of the markdown results, shown inside `snakemake --report report.html`
# (the report embeds .html results; markdown would only be a download). One rule, reused.


rule summary_html:
    """report.md as a self-contained HTML page (images inlined)."""
    input:
        md=summary_report_md(),
    output:
        html=report(
            results("html", "report.html"),
            caption="../docs/captions/summary_report.rst",
            category="Summary",
        ),
    log:
        logs("summary_html"),
    benchmark:
        bench("summary_html")
    conda:
        ENV
    params:
        title="Summary report",
    script:
        "../scripts/markdown_html.py"


use rule summary_html as card_html with:
    input:
        md=rules.model_card.output.card,
    output:
        html=report(
            results("html", "model_card.html"),
            caption="../docs/captions/model_card.rst",
            category="Model card",
        ),
    log:
        logs("card_html"),
    benchmark:
        bench("card_html")
    params:
        title="Model card",


use rule summary_html as params_html with:
    input:
        md=results("reports", "params", "{model}.md"),
    output:
        html=report(
            results("html", "params", "{model}.html"),
            caption="../docs/captions/params_report.rst",
            category="Parameters",
            labels={"model": "{model}"},
        ),
    log:
        logs("params_html_{model}"),
    benchmark:
        bench("params_html_{model}")
    wildcard_constraints:
        model="[A-Za-z0-9_.-]+",
    params:
        title="Parameter report: {model}",


use rule summary_html as params_html_finetuned with:
    input:
        md=results("reports", "params", "{task}", "{model}.md"),
    output:
        html=report(
            results("html", "params", "{task}", "{model}.html"),
            caption="../docs/captions/params_report.rst",
            category="Parameters",
            labels={"model": "{model}", "task": "{task}"},
        ),
    log:
        logs("params_html_{task}_{model}"),
    benchmark:
        bench("params_html_{task}_{model}")
    wildcard_constraints:
        task="|".join(TASKS),
        model="[A-Za-z0-9_.-]+",
    params:
        title="Parameter report: {task}/{model}",


FINAL_TARGETS.extend(
    [
        rules.summary_html.output.html,
        rules.card_html.output.html,
        *(results("html", "params", f"{name}.html") for name in PARAM_REPORTS),
    ]
)
