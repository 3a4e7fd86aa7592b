"""bertflow: the logic behind the BERT pretrain -> evaluate -> publish Snakemake workflow.

Every workflow stage is a function in this package; `scripts/` only hands it the rule's
inputs, outputs and params. Heavy imports (torch, transformers) stay inside the modules
that need them so that `snakemake` parses the workflow quickly.
"""

__version__ = "0.1.0"
