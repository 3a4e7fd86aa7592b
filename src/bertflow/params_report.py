"""Parameter report of a saved BERT-family model: architecture, counts per module, memory.

Every parameter is counted from the loaded model and assigned to exactly one row of a per-module
table (embeddings, each encoder layer's attention Q/K/V/O, layer norms and feed-forward, pooler,
task head). The same totals are then derived in closed form from the config alone; a mismatch
means the architecture is not what the config says (or not one this report understands), and
the stage fails rather than publish numbers nobody checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError, DataError
from .io import write_json, write_text
from .markdown import size, table
from .provenance import environment_info

SUPPORTED_MODEL_TYPES = ("bert", "roberta")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")
BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "bf16": 2}

# Encoder sub-modules, as (row name, pattern after `encoder.layer.<i>.`).
_LAYER_PARTS = (
    ("attention.query (Q)", "attention.self.query."),
    ("attention.key (K)", "attention.self.key."),
    ("attention.value (V)", "attention.self.value."),
    ("attention.output (O)", "attention.output.dense."),
    ("attention.layer_norm", "attention.output.LayerNorm."),
    ("feed_forward.in", "intermediate.dense."),
    ("feed_forward.out", "output.dense."),
    ("output.layer_norm", "output.LayerNorm."),
)
_EMBEDDING_PARTS = (
    ("word_embeddings", "embeddings.word_embeddings."),
    ("position_embeddings", "embeddings.position_embeddings."),
    ("token_type_embeddings", "embeddings.token_type_embeddings."),
    ("embeddings.layer_norm", "embeddings.LayerNorm."),
)
_LAYER_RE = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.(.+)$")


def architecture(config) -> dict:
    """The shape of the network as named in the report (from a transformers config)."""
    d_model, heads = config.hidden_size, config.num_attention_heads
    return {
        "model_type": config.model_type,
        "architecture": (config.architectures or ["?"])[0],
        "vocab_size": config.vocab_size,
        "d_model": d_model,
        "d_ff": config.intermediate_size,
        "layers": config.num_hidden_layers,
        "heads": heads,
        "head_dim": d_model // heads,
        "max_positions": config.max_position_embeddings,
        "type_vocab_size": getattr(config, "type_vocab_size", 0),
        "num_labels": getattr(config, "num_labels", None),
    }


def classify_parameter(name: str) -> tuple[str, str]:
    """(group, row) of one parameter name, e.g. ("layer 0", "attention.query (Q)")."""
    match = _LAYER_RE.search(name)
    if match:
        layer, rest = match.groups()
        for row, prefix in _LAYER_PARTS:
            if rest.startswith(prefix):
                return f"layer {layer}", row
        raise DataError(f"parameter {name!r}: unknown encoder sub-module; the report knows {[p for _, p in _LAYER_PARTS]}")
    for row, pattern in _EMBEDDING_PARTS:
        if pattern in name:
            return "embeddings", row
    if ".pooler." in f".{name}":
        return "pooler", "pooler.dense"
    # Anything outside the body is the task head: keep its module path as the row name.
    return "head", name.rsplit(".", 1)[0]


def module_table(model) -> list[dict]:
    """Rows of (group, module, params) in model order; tied weights counted once."""
    rows: dict[tuple[str, str], int] = {}
    for name, param in model.named_parameters():  # remove_duplicate=True: a tied decoder is not recounted
        key = classify_parameter(name)
        rows[key] = rows.get(key, 0) + param.numel()
    return [{"group": group, "module": module, "params": count} for (group, module), count in rows.items()]


def closed_form(arch: dict, *, has_pooler: bool, tied_decoder: bool) -> dict:
    """Parameter counts derived from the config alone (BERT's formulas)."""
    v, d, d_ff, n = arch["vocab_size"], arch["d_model"], arch["d_ff"], arch["num_labels"] or 2
    embeddings = v * d + arch["max_positions"] * d + arch["type_vocab_size"] * d + 2 * d
    # Q, K, V, O projections with biases; two feed-forward matrices; two layer norms.
    per_layer = 4 * (d * d + d) + 2 * d * d_ff + d_ff + d + 4 * d
    pooler = d * d + d if has_pooler else 0
    head = _head_formula(arch, v, d, n, tied_decoder)
    total = embeddings + arch["layers"] * per_layer + pooler + head
    return {
        "embeddings": embeddings,
        "per_layer": per_layer,
        "encoder": arch["layers"] * per_layer,
        "pooler": pooler,
        "head": head,
        "total": total,
        "formula": {
            "embeddings": "V*d + P*d + T*d + 2d",
            "per_layer": "4(d^2+d) + 2*d*d_ff + d_ff + d + 4d",
            "pooler": "d^2 + d" if has_pooler else "0 (no pooler)",
            "head": _HEAD_FORMULAS.get(_head_kind(arch), "?"),
        },
    }


_HEAD_FORMULAS = {
    "masked_lm": "d^2 + d + 2d + V (+ V*d when the decoder is not tied)",
    "sequence_classification": "d*n + n (RoBERTa: + d^2 + d)",
    "question_answering": "2d + 2",
    "base": "0",
}


def _head_kind(arch: dict) -> str:
    name = arch["architecture"]
    for suffix, kind in (("ForMaskedLM", "masked_lm"), ("ForSequenceClassification", "sequence_classification"),
                         ("ForQuestionAnswering", "question_answering")):
        if name.endswith(suffix):
            return kind
    if name.endswith("Model"):
        return "base"
    raise ConfigError(
        f"architecture {name!r}: the parameter check knows *ForMaskedLM, *ForSequenceClassification, "
        "*ForQuestionAnswering and *Model; add its head formula to bertflow.params_report"
    )


def _head_formula(arch: dict, v: int, d: int, n: int, tied_decoder: bool) -> int:
    kind = _head_kind(arch)
    if kind == "masked_lm":
        return d * d + d + 2 * d + v + (0 if tied_decoder else v * d)
    if kind == "sequence_classification":
        dense = d * d + d if arch["model_type"] == "roberta" else 0  # RoBERTa's head has its own dense layer
        return dense + d * n + n
    if kind == "question_answering":
        return 2 * d + 2
    return 0


def check_counts(table: list[dict], expected: dict, arch: dict, source: str) -> None:
    """Raise when any group's counted parameters differ from the closed form."""
    counted = _group_totals(table)
    problems = []
    for group, value in (("embeddings", expected["embeddings"]), ("pooler", expected["pooler"]),
                         ("head", expected["head"]), ("total", expected["total"])):
        if counted.get(group, 0) != value:
            problems.append(f"{group}: counted {counted.get(group, 0):,}, formula {value:,}")
    for layer in range(arch["layers"]):
        got = counted.get(f"layer {layer}", 0)
        if got != expected["per_layer"]:
            problems.append(f"layer {layer}: counted {got:,}, formula {expected['per_layer']:,}")
    if problems:
        raise DataError(
            f"{source}: parameter count does not match the closed form ({'; '.join(problems)}); the saved "
            "weights do not have the architecture its config.json describes"
        )


def _group_totals(table: list[dict]) -> dict[str, int]:
    totals: dict[str, int] = {"total": 0}
    for row in table:
        totals[row["group"]] = totals.get(row["group"], 0) + row["params"]
        totals["total"] += row["params"]
    return totals


def memory(params: int) -> dict[str, int]:
    return {dtype: params * size for dtype, size in BYTES_PER_PARAM.items()}


def folder_sizes(model_dir: str | Path) -> dict[str, int]:
    """Bytes of the weight files and of the whole folder (what a download fetches)."""
    files = [p for p in Path(model_dir).rglob("*") if p.is_file()]
    return {
        "weights_bytes": sum(p.stat().st_size for p in files if p.name.endswith(WEIGHT_SUFFIXES)),
        "folder_bytes": sum(p.stat().st_size for p in files),
    }


def load_model(model_dir: str | Path):
    """The saved model with the class its config names (BertForMaskedLM, ...ForQuestionAnswering)."""
    import transformers

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise DataError(f"{model_dir}: no config.json; expected a folder written by save_pretrained")
    config = transformers.AutoConfig.from_pretrained(model_dir)
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"{model_dir}: model_type {config.model_type!r} is not covered by the parameter report "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    name = (config.architectures or [None])[0]
    model_class = getattr(transformers, name, None) if name else transformers.AutoModel
    if model_class is None:
        raise DataError(f"{model_dir}/config.json: architecture {name!r} is not a transformers class")
    return model_class.from_pretrained(model_dir)


def parameter_report(model_dir: str | Path, name: str) -> dict:
    """Architecture, counted and closed-form parameters, memory and the per-module table."""
    model = load_model(model_dir)
    arch = architecture(model.config)
    table = module_table(model)
    word = model.get_input_embeddings().weight
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = output is not None and output.weight is word
    has_pooler = any(row["group"] == "pooler" for row in table)
    expected = closed_form(arch, has_pooler=has_pooler, tied_decoder=tied)
    check_counts(table, expected, arch, str(model_dir))
    total = sum(p.numel() for p in model.parameters())
    word_params = word.numel()
    return {
        "name": name,
        "model_dir": str(model_dir),
        **arch,
        "parameters": {
            "total": total,
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "embeddings": expected["embeddings"],
            "encoder": expected["encoder"],
            "per_layer": expected["per_layer"],
            "pooler": expected["pooler"],
            "head": expected["head"],
            "tied_word_embeddings": tied,
        },
        "closed_form": {**expected, "matches_counted": True},
        "word_embeddings": {"shape": list(word.shape), "params": word_params, "bytes": memory(word_params)},
        "memory_bytes": memory(total),
        "files": folder_sizes(model_dir),
        "modules": table,
        "environment": environment_info(),
    }


def report_markdown(report: dict) -> str:
    params, words, cf = report["parameters"], report["word_embeddings"], report["closed_form"]
    lines = [f"# Parameter report: {report['name']}", "", f"`{report['architecture']}` from `{report['model_dir']}`", ""]
    lines += table(
        ["vocab size", "d_model", "d_ff", "layers", "heads", "head dim", "max positions", "parameters", "trainable"],
        [[f"{report['vocab_size']:,}", report["d_model"], report["d_ff"], report["layers"], report["heads"],
          report["head_dim"], report["max_positions"], f"{params['total']:,}", f"{params['trainable']:,}"]],
        numeric=set(range(9)),
    )
    lines += [
        "",
        f"Word embeddings: {words['shape'][0]:,} x {words['shape'][1]:,} = {words['params']:,} parameters = "
        f"{words['bytes']['fp32']:,} bytes in fp32 ({size(words['bytes']['fp32'])}), "
        f"{words['bytes']['fp16']:,} bytes in fp16/bf16 ({size(words['bytes']['fp16'])}); "
        f"{100 * words['params'] / params['total']:.1f}% of all parameters"
        + (" (shared with the tied output layer)." if params["tied_word_embeddings"] else "."),
        "",
        f"Whole model: {size(report['memory_bytes']['fp32'])} in fp32, {size(report['memory_bytes']['fp16'])} "
        f"in fp16/bf16; on disk {size(report['files']['weights_bytes'])} of weights, "
        f"{size(report['files']['folder_bytes'])} for the folder.",
        "",
        "## Closed-form check",
        "",
    ]
    lines += table(["part", "formula", "parameters"],
                   [[part, cf["formula"][part], f"{cf[part]:,}"] for part in ("embeddings", "per_layer", "pooler", "head")]
                   + [["**total**", f"embeddings + {report['layers']} x per_layer + pooler + head", f"**{cf['total']:,}**"]],
                   numeric={2})
    lines += ["", f"Counted from the loaded model: {params['total']:,} (matches).", "", "## Per module", ""]
    lines += table(["group", "module", "parameters", "share"],
                   [[row["group"], row["module"], f"{row['params']:,}", f"{100 * row['params'] / params['total']:.2f}%"]
                    for row in report["modules"]], numeric={2, 3})
    return "\n".join(lines) + "\n"


def write_params_report(model_dir: str, out_json: str, out_md: str, name: str) -> dict:
    """Stage entry: JSON and Markdown parameter report of one saved model."""
    report = parameter_report(model_dir, name)
    write_json(out_json, report)
    write_text(out_md, report_markdown(report))
    return report
