from bertflow.distributed import slurm_resources
from bertflow.settings import result_neutral_keys

PRETRAIN = config["pretrain"]
# Keys that change how a run is watched or how fast it goes, not what it computes (the schema's
# `x-changes-result: false`): the script reads them from the config, so changing one does not
# rerun pretraining.
PRETRAIN_WATCH_KEYS = result_neutral_keys("pretrain")
# Not params either: seq_len comes with the blocks (an input), num_processes and nodes are the rule's own.
PRETRAIN_NOT_PARAMS = ("seq_len", "num_processes", "nodes", *PRETRAIN_WATCH_KEYS)


rule pretrain:
    """BERT masked-LM pretraining from scratch; perplexity on fixed validation masks every epoch.

    Checkpoints live outside the declared outputs (results/pretrain/checkpoints), so a killed or
    failed run keeps them and the next run resumes from the last one. Also undeclared (they never
    make a run stale): TensorBoard events in results/pretrain/tensorboard, checkpoints set aside in
    results/pretrain/stale-checkpoints.
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
    log:
        logs("pretrain"),
    benchmark:
        bench("pretrain")
    conda:
        ENV
    threads: workflow.cores
    resources:
        # One node: gpu=N. Several: a SLURM allocation of `nodes` nodes with N GPUs each, the
        # stage starting one torchrun agent per node through srun (docs/scaling-out.md).
        **slurm_resources(PRETRAIN["nodes"], PRETRAIN["num_processes"], gpus(PRETRAIN["num_processes"])),
    params:
        train=sorted_keys({k: v for k, v in PRETRAIN.items() if k not in PRETRAIN_NOT_PARAMS}),
        watch_keys=PRETRAIN_WATCH_KEYS,
        device=config["device"],
        seed=seed_for("pretrain"),
        checkpoint_dir=results("pretrain", "checkpoints"),
        num_processes=PRETRAIN["num_processes"],
        nodes=PRETRAIN["nodes"],
    script:
        "../scripts/pretrain.py"


FINAL_TARGETS.extend(rules.pretrain.output)
