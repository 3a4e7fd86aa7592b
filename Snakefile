import os

# bertflow: text corpus -> WordPiece tokenizer -> BERT MLM pretraining -> reports, model card,
# Hub upload -> SST-2 / SQuAD fine-tuning -> benchmarks -> one summary report.
# Run: `snakemake` (profiles/default sets the cores and the GPU slot; see README.md); every stage
# is a cached file target.


# The defaults live beside the Snakefile; `--configfile my.yaml` overrides any of their keys.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/tokenizer.smk"
include: "rules/pretrain.smk"
include: "rules/finetune.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"
include: "rules/upload.smk"
include: "rules/code_versions.smk"


rule all:
    default_target: True
    input:
        FINAL_TARGETS,
