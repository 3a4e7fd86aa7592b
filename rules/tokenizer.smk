rule train_tokenizer:
    """WordPiece vocabulary trained on the training text, saved as a BertTokenizerFast."""
    input:
        train=rules.prepare_corpus.output.train,
        validation=rules.prepare_corpus.output.validation,
    output:
        tokenizer=directory(results("tokenizer")),
        report=results("reports", "tokenizer.json"),
    log:
        logs("train_tokenizer"),
    benchmark:
        bench("train_tokenizer")
    conda:
        ENV
    threads: workflow.cores
    params:
        tokenizer=config["tokenizer"],
        seed=config["seed"],
    script:
        "../scripts/train_tokenizer.py"


rule tokenize_corpus:
    """Tokenize once and pack into fixed-length blocks, so pretraining never re-tokenizes."""
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        train=rules.prepare_corpus.output.train,
        validation=rules.prepare_corpus.output.validation,
    output:
        blocks=directory(results("blocks")),
    log:
        logs("tokenize_corpus"),
    benchmark:
        bench("tokenize_corpus")
    conda:
        ENV
    threads: workflow.cores
    params:
        seq_len=config["pretrain"]["seq_len"],
    script:
        "../scripts/tokenize_corpus.py"


FINAL_TARGETS.append(rules.train_tokenizer.output.report)
