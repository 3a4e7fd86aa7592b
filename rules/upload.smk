UPLOAD = config["upload"]

# The token is read from the environment by the upload step only; declaring it makes Snakemake
# fail at start (not after hours of training) when the push is enabled but HF_TOKEN is unset.
if UPLOAD["enabled"]:

    envvars:
        "HF_TOKEN",


localrules:
    upload,


rule upload_folder:
    """The exact folder pushed to the Hub: model, tokenizer, README.md (card) and metrics."""
    input:
        **CARD_SUMMARIES,
        model=rules.pretrain.output.model,
        card=rules.model_card.output.card,
        params_json=PARAM_REPORTS["pretrained"][0],
        params_md=PARAM_REPORTS["pretrained"][1],
        train_info=rules.pretrain.output.info,
        perplexity=rules.pretrain.output.perplexity,
        plot=rules.pretrain.output.plot,
    output:
        folder=directory(results("upload", "folder")),
    log:
        logs("upload_folder"),
    benchmark:
        bench("upload_folder")
    conda:
        ENV
    params:
        tasks=list(CARD_SUMMARIES),
    script:
        "../scripts/upload_folder.py"


rule upload:
    """Push the folder to the Hub (upload.enabled), else a dry-run receipt; runs where the network is."""
    input:
        folder=rules.upload_folder.output.folder,
    output:
        receipt=results("upload", "receipt.json"),
    log:
        logs("upload"),
    benchmark:
        bench("upload")
    conda:
        ENV
    params:
        settings=dict(sorted(UPLOAD.items())),  # key order in the config file must not look like a change
    script:
        "../scripts/upload.py"


FINAL_TARGETS.append(rules.upload.output.receipt)
