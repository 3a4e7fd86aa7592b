"""Baseline models from the Hugging Face Hub, saved in the form every later stage reads.

A Hub checkpoint comes with whatever heads its authors trained (BertForPreTraining's MLM and
next-sentence heads, ELECTRA's discriminator head, a task head, none). Fine-tuning puts its own
head on the encoder and the parameter report counts the encoder, so the folder holds the base
encoder (`AutoModel`, architectures e.g. ["BertModel"]) with the weights the checkpoint really has:
a module the checkpoint lacks (a pooler never trained) is left out, and fine-tuning initialises
it as part of its new head, as it would from the Hub id.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .checks import require_supported_model_type
from .training import save_model

log = logging.getLogger(__name__)


def download_model(repo_id: str, out_dir: str, revision: str | None = None) -> None:
    """Save a Hub model's base encoder (weights as safetensors) and its tokenizer with
    save_pretrained; config.json is checked before any weight is downloaded. `repo_id` may also be a
    local model folder (from_pretrained resolves both the same way)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    log.info("downloading model %s (revision %s)", repo_id, revision)
    config = AutoConfig.from_pretrained(repo_id, revision=revision)  # config.json only, before the weights
    require_supported_model_type(config.to_dict(), repo_id)
    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    model, info = AutoModel.from_pretrained(repo_id, revision=revision, output_loading_info=True)
    untrained = set(info["missing_keys"])
    if untrained:
        log.info("%s: leaving out weights the checkpoint does not have: %s", repo_id, sorted(untrained))
    weights = {name: tensor for name, tensor in model.state_dict().items() if name not in untrained}
    save_model(model, tokenizer, Path(out_dir), state_dict=weights)
