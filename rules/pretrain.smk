PRETRAIN = config["pretrain"]


rule pretrain:
    """BERT masked-LM pretraining from scratch; perplexity on fixed validation masks every epoch.

    Checkpoints live outside the declared outputs (results/pretrain/checkpoints), so a killed or
    failed run keeps them and the next run resumes from the last one.
    """
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        blocks=rules.tokenize_corpus.output.blocks,
    output:
        model=directory(results("pretrain", "model")),
        perplexity=results("pretrain", "perplexity.csv"),
        plot=report(
            results("pretrain", "perplexity.png"),
            caption="../docs/captions/perplexity.rst",
            category="Pretraining",
        ),
        info=results("pretrain", "train_info.json"),
    params:
        # Sorted: reordering keys in a config file must not look like a new hyperparameter.
        train=dict(sorted((k, v) for k, v in PRETRAIN.items() if k != "num_processes")),
        device=config["device"],
        seed=seed_for("pretrain"),
        checkpoint_dir=results("pretrain", "checkpoints"),
        num_processes=PRETRAIN["num_processes"],
    resources:
        gpu=gpus(PRETRAIN["num_processes"]),
    threads: workflow.cores
    log:
        logs("pretrain"),
    benchmark:
        bench("pretrain")
    conda:
        ENV
    script:
        "../scripts/pretrain.py"


FINAL_TARGETS.extend(rules.pretrain.output)
