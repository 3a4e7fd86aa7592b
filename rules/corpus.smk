localrules:
    download_corpus,


rule download_corpus:
    """The only corpus step that touches the network: save a Hub dataset to disk."""
    output:
        directory(results("downloads", "corpus")),
    log:
        logs("download_corpus"),
    benchmark:
        bench("download_corpus")
    conda:
        ENV
    params:
        hub=CORPUS["hub"],
    script:
        "../scripts/download_corpus.py"


# Validation split off the training text (no validation files or Hub split given): only then do the
# split's keys change the result.
SPLIT_OFF = not (
    CORPUS["local"]["validation"]
    if CORPUS["source"] == "local"
    else CORPUS["source"] == "hub" and CORPUS["hub"]["validation_split"]
)


rule prepare_corpus:
    """Plain-text train/validation split (a line per paragraph, a blank line between documents),
    streamed from any of the three sources."""
    input:
        unpack(corpus_sources),
    output:
        train=results("corpus", "train.txt"),
        validation=results("corpus", "validation.txt"),
        stats=results("corpus", "stats.json"),
    log:
        logs("prepare_corpus"),
    benchmark:
        bench("prepare_corpus")
    conda:
        ENV
    params:
        source=CORPUS["source"],
        generated=CORPUS["generated"] if CORPUS["source"] == "generated" else None,
        hub_text_column=CORPUS["hub"]["text_column"] if CORPUS["source"] == "hub" else None,
        hub_splits=(
            [CORPUS["hub"]["train_split"], CORPUS["hub"]["validation_split"]] if CORPUS["source"] == "hub" else None
        ),
        validation_fraction=CORPUS["validation_fraction"] if SPLIT_OFF else None,
        split_unit=CORPUS["split_unit"] if SPLIT_OFF else None,
        max_lines=CORPUS["max_lines"],
        max_line_chars=CORPUS["max_line_chars"],
        seed=config["seed"],
    script:
        "../scripts/prepare_corpus.py"
