# Rules for the finetune stages (see README.md).
