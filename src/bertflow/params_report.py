"""Parameter report of a saved BERT-family model: architecture, counts per module, memory.

Every parameter is counted from the saved weights (the safetensors headers: shapes without loading
a tensor or importing transformers) and assigned to exactly one row of a per-module
table (embeddings, each encoder layer's attention Q/K/V/O, layer norms and feed-forward, pooler,
task head). The same totals are then derived in closed form from the config alone; a mismatch
means the architecture is not what the config says (or not one this report understands), and
the stage fails rather than publish numbers nobody checked.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

from .errors import ConfigError, DataError
from .io import write_json, write_text
from .markdown import size, table
from .provenance import environment_info

log = logging.getLogger(__name__)

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


# Defaults transformers fills in when a config.json leaves a key out (BertConfig / RobertaConfig).
_CONFIG_DEFAULTS = {
    "bert": {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2},
    "roberta": {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2},
}
# Buffers some older checkpoints store next to the weights; they are not parameters.
_BUFFER_SUFFIXES = ("position_ids", "token_type_ids")


def architecture(config) -> dict:
    """The shape of the network as named in the report (from a transformers config or config.json's dict)."""
    if isinstance(config, dict):
        config = _config_view(config)
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


def _config_view(raw: dict):
    """config.json as attributes, with transformers' defaults for the keys the report reads."""
    from types import SimpleNamespace

    values = {**_CONFIG_DEFAULTS.get(raw.get("model_type"), {}), **raw}
    # PretrainedConfig.num_labels is len(id2label), 2 when the file names no labels.
    values["num_labels"] = len(raw["id2label"]) if raw.get("id2label") else raw.get("num_labels", 2)
    values.setdefault("architectures", None)
    return SimpleNamespace(**values)


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
    "masked_lm": "d^2 + d + 2d + V (+ V*d + V when the decoder is not tied)",
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
        # transformers 5 gives an untied decoder its own bias too (a tied one shares the head's bias).
        return d * d + d + 2 * d + v + (0 if tied_decoder else v * d + v)
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


def read_config(model_dir: str | Path) -> dict:
    """config.json of a saved model, with a clear error for a folder that is not one."""
    model_dir = Path(model_dir)
    path = model_dir / "config.json"
    if not path.is_file():
        raise DataError(f"{model_dir}: no config.json; expected a folder written by save_pretrained")
    config = json.loads(path.read_text())
    if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"{model_dir}: model_type {config.get('model_type')!r} is not covered by the parameter report "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    return config


def load_model(model_dir: str | Path):
    """The saved model with the class its config names (BertForMaskedLM, ...ForQuestionAnswering)."""
    import transformers

    read_config(model_dir)
    config = transformers.AutoConfig.from_pretrained(model_dir)
    name = (config.architectures or [None])[0]
    model_class = getattr(transformers, name, None) if name else transformers.AutoModel
    if model_class is None:
        raise DataError(f"{model_dir}/config.json: architecture {name!r} is not a transformers class")
    return model_class.from_pretrained(model_dir)


def safetensors_shapes(model_dir: str | Path) -> dict[str, list[int]] | None:
    """Name -> shape of every tensor in the folder's safetensors file(s), read from the headers only
    (no tensor data, no torch); None when the weights are in another format."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():  # sharded: the index names the file of every tensor
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (model_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    shapes = {}
    for file in files:
        with safe_open(str(model_dir / file), framework="numpy") as handle:
            for key in handle.keys():
                shapes[key] = handle.get_slice(key).get_shape()
    return shapes


def model_parameters(shapes: dict[str, list[int]], tied_decoder: bool) -> dict[str, list[int]]:
    """The parameters transformers would build from these saved tensors: buffers dropped, and the
    tensors tied on load (the decoder weight to the word embeddings, the decoder bias to the head's
    own bias; transformers 5 unties both when tie_word_embeddings is false) counted once, as
    `named_parameters()` does."""
    params = {}
    for name, shape in shapes.items():
        if name.endswith(_BUFFER_SUFFIXES):
            continue
        if tied_decoder and name.endswith((".decoder.weight", ".decoder.bias")):
            continue
        params[name] = shape
    return params


# Order of sibling modules in the heads transformers builds (registration order), so the table
# lists rows as `named_parameters()` would; unknown names follow alphabetically.
_HEAD_ORDER = ("transform", "dense", "LayerNorm", "layer_norm", "decoder", "out_proj")


# The order transformers registers the embedding modules in (RoBERTa's differs from BERT's).
_EMBEDDING_ORDER = {
    "bert": ("word_embeddings", "position_embeddings", "token_type_embeddings", "embeddings.layer_norm"),
    "roberta": ("word_embeddings", "token_type_embeddings", "embeddings.layer_norm", "position_embeddings"),
}


def _row_order(row: tuple[str, str], model_type: str) -> tuple:
    group, module = row
    if group == "embeddings":
        return (0, _EMBEDDING_ORDER[model_type].index(module))
    if group.startswith("layer "):
        return (1, int(group.split()[1]), [r for r, _ in _LAYER_PARTS].index(module))
    if group == "pooler":
        return (2,)
    # A module's own parameters come before its children's (named_modules order).
    parts = module.split(".")
    return (3, *[(_HEAD_ORDER.index(p) if p in _HEAD_ORDER else len(_HEAD_ORDER), p) for p in parts])


def header_module_table(params: dict[str, list[int]], model_type: str = "bert") -> list[dict]:
    """The per-module table of `module_table`, from tensor shapes instead of a loaded model."""
    rows: dict[tuple[str, str], int] = {}
    for name, shape in params.items():
        key = classify_parameter(name)
        rows[key] = rows.get(key, 0) + math.prod(shape)
    return [{"group": group, "module": module, "params": rows[(group, module)]}
            for group, module in sorted(rows, key=lambda row: _row_order(row, model_type))]


def _word_embeddings(params: dict[str, list[int]]) -> list[int]:
    names = [n for n in params if "embeddings.word_embeddings." in n]
    if len(names) != 1:
        raise DataError(f"expected one word_embeddings tensor, found {names or 'none'}")
    return list(params[names[0]])


def _header_counts(model_dir: str | Path) -> dict | None:
    """Counts from config.json and the safetensors headers; None when there is no safetensors file."""
    config = read_config(model_dir)
    shapes = safetensors_shapes(model_dir)
    if shapes is None:
        return None
    arch = architecture(config)
    tied = _head_kind(arch) == "masked_lm" and config.get("tie_word_embeddings", True)
    params = model_parameters(shapes, tied)
    table = header_module_table(params, arch["model_type"])
    total = sum(math.prod(shape) for shape in params.values())
    return {"arch": arch, "table": table, "tied": tied, "word_shape": _word_embeddings(params),
            "total": total, "trainable": total}  # from_pretrained leaves every parameter trainable


def _loaded_counts(model_dir: str | Path) -> dict:
    """The same counts from the model loaded with transformers (weights other than safetensors)."""
    model = load_model(model_dir)
    word = model.get_input_embeddings().weight
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {
        "arch": architecture(model.config),
        "table": module_table(model),
        "tied": output is not None and output.weight is word,
        "word_shape": list(word.shape),
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def count_parameters(model_dir: str | Path) -> dict:
    """Architecture, per-module table and totals, checked against the closed form.

    Read from config.json and the safetensors headers (milliseconds, no transformers import); a
    folder without safetensors, or whose file holds tensors the model does not use (e.g. a
    pretraining checkpoint's extra heads), is counted from the model transformers loads instead.
    """
    counts = _header_counts(model_dir)
    if counts is not None:
        try:
            counts["expected"] = _checked_closed_form(counts, str(model_dir))
            return counts
        except DataError:
            log.info("%s: safetensors header does not match the closed form; loading the model", model_dir)
    counts = _loaded_counts(model_dir)
    counts["expected"] = _checked_closed_form(counts, str(model_dir))
    return counts


def _checked_closed_form(counts: dict, source: str) -> dict:
    has_pooler = any(row["group"] == "pooler" for row in counts["table"])
    expected = closed_form(counts["arch"], has_pooler=has_pooler, tied_decoder=counts["tied"])
    check_counts(counts["table"], expected, counts["arch"], source)
    return expected


def parameter_report(model_dir: str | Path, name: str) -> dict:
    """Architecture, counted and closed-form parameters, memory and the per-module table."""
    counts = count_parameters(model_dir)
    arch, expected, total, tied = counts["arch"], counts["expected"], counts["total"], counts["tied"]
    word_params = math.prod(counts["word_shape"])
    return {
        "name": name,
        "model_dir": str(model_dir),
        **arch,
        "parameters": {
            "total": total,
            "trainable": counts["trainable"],
            "embeddings": expected["embeddings"],
            "encoder": expected["encoder"],
            "per_layer": expected["per_layer"],
            "pooler": expected["pooler"],
            "head": expected["head"],
            "tied_word_embeddings": tied,
        },
        "closed_form": {**expected, "matches_counted": True},
        "word_embeddings": {"shape": counts["word_shape"], "params": word_params, "bytes": memory(word_params)},
        "memory_bytes": memory(total),
        "files": folder_sizes(model_dir),
        "modules": counts["table"],
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
    lines += ["", f"Counted from the saved weights: {params['total']:,} (matches).", "", "## Per module", ""]
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
