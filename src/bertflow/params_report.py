"""Parameter report of a saved encoder of any family: architecture, counts per module, memory.

Every parameter is counted from the saved weights (the safetensors headers: shapes without loading
a tensor or importing transformers) and assigned to exactly one row of a per-module table
(embeddings; each layer's attention, layer norms and feed-forward; pooler; other parts of the base
model; the pretraining or task head). Sub-modules the table has no row for go to the "other"
group. The same totals are then derived in closed form from the config alone, for each family
whose formulas are written here (BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT, ALBERT,
DeBERTa-v2/v3, SqueezeBERT, ModernBERT). A mismatch means the architecture is not what the
config says, and the stage fails rather than publish numbers nobody checked; a family or head
without a formula is reported as such ("no closed form for ...") and counted all the same.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from types import SimpleNamespace

from .errors import DataError
from .io import write_json, write_text
from .markdown import size, table
from .provenance import environment_info
from .weight_files import safetensors_shapes

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")
BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "bf16": 2}
# Buffers some older checkpoints store next to the weights; they are not parameters.
_BUFFER_SUFFIXES = ("position_ids", "token_type_ids")

# Rows of one layer: (row name, sub-module paths after `<layers>.<i>.` in the families' naming).
_LAYER_PARTS = (
    ("attention.query (Q)", ("attention.self.query.", "attention.q_lin.", "attention.self.query_proj.",
                             "attention.query.")),
    ("attention.key (K)", ("attention.self.key.", "attention.k_lin.", "attention.self.key_proj.", "attention.key.")),
    ("attention.value (V)", ("attention.self.value.", "attention.v_lin.", "attention.self.value_proj.",
                             "attention.value.")),
    ("attention.query/key/value (QKV)", ("attn.Wqkv.",)),
    ("attention.relative position key", ("attention.self.pos_key_proj.",)),
    ("attention.relative position query", ("attention.self.pos_query_proj.",)),
    ("attention.output (O)", ("attention.output.dense.", "attention.out_lin.", "attention.dense.",
                              "post_attention.conv1d.", "attn.Wo.")),
    ("attention.layer_norm", ("attention.output.LayerNorm.", "sa_layer_norm.", "attention.LayerNorm.",
                              "post_attention.layernorm.", "attn_norm.")),
    ("feed_forward.layer_norm", ("mlp_norm.",)),
    ("feed_forward.in", ("intermediate.dense.", "ffn.lin1.", "ffn.", "intermediate.conv1d.", "mlp.Wi.")),
    ("feed_forward.out", ("output.dense.", "ffn.lin2.", "ffn_output.", "output.conv1d.", "mlp.Wo.")),
    ("output.layer_norm", ("output.LayerNorm.", "output_layer_norm.", "full_layer_layer_norm.",
                           "output.layernorm.")),
)
_LAYER_ROWS = [row for row, _ in _LAYER_PARTS]
_EMBEDDING_PARTS = (
    ("word_embeddings", ("word_embeddings.", "tok_embeddings.")),
    ("position_embeddings", ("position_embeddings.",)),
    ("token_type_embeddings", ("token_type_embeddings.",)),
    ("embeddings.layer_norm", ("LayerNorm.", "norm.")),
    ("embeddings.projection", ("embed_proj.",)),
)
_EMBEDDING_ROWS = [row for row, _ in _EMBEDDING_PARTS]
_LAYER_RE = re.compile(r"^(?:(?:encoder|transformer)\.)?layers?\.(\d+)\.(.+)$")
_ALBERT_LAYER_RE = re.compile(r"^encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.(.+)$")


def _family(prefix: str, names: dict | None = None, **defaults) -> dict:
    """A family: the attribute its base model has in a head model, how its config names the
    shape (DistilBERT's `dim`...), and transformers' defaults for keys a config.json leaves out."""
    return {"prefix": prefix, "names": names or {}, "defaults": defaults}


_STANDARD = dict(num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
FAMILIES = {
    "bert": _family("bert", vocab_size=30522, hidden_size=768, type_vocab_size=2, **_STANDARD),
    "roberta": _family("roberta", vocab_size=50265, hidden_size=768, type_vocab_size=2, **_STANDARD),
    "xlm-roberta": _family("roberta", vocab_size=30522, hidden_size=768, type_vocab_size=2, **_STANDARD),
    "distilbert": _family("distilbert", {"hidden_size": "dim", "intermediate_size": "hidden_dim",
                                         "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads"},
                          vocab_size=30522, dim=768, hidden_dim=3072, n_layers=6, n_heads=12,
                          max_position_embeddings=512),
    "electra": _family("electra", vocab_size=30522, embedding_size=128, hidden_size=256, num_hidden_layers=12,
                       num_attention_heads=4, intermediate_size=1024, max_position_embeddings=512, type_vocab_size=2),
    "albert": _family("albert", vocab_size=30000, embedding_size=128, hidden_size=4096, num_hidden_layers=12,
                      num_attention_heads=64, intermediate_size=16384, max_position_embeddings=512,
                      type_vocab_size=2, num_hidden_groups=1, inner_group_num=1),
    "squeezebert": _family("transformer", vocab_size=30522, hidden_size=768, embedding_size=768, type_vocab_size=2,
                           q_groups=4, k_groups=4, v_groups=4, post_attention_groups=1, intermediate_groups=4,
                           output_groups=4, **_STANDARD),
    "deberta-v2": _family("deberta", vocab_size=128100, hidden_size=1536, num_hidden_layers=24,
                          num_attention_heads=24, intermediate_size=6144, max_position_embeddings=512,
                          type_vocab_size=0, relative_attention=False, max_relative_positions=-1,
                          position_biased_input=True, pos_att_type=None, position_buckets=-1,
                          share_att_key=False, norm_rel_ebd="none", conv_kernel_size=0),
    "modernbert": _family("model", vocab_size=50368, hidden_size=768, num_hidden_layers=22, num_attention_heads=12,
                          intermediate_size=1152, max_position_embeddings=8192, norm_bias=False,
                          attention_bias=False, mlp_bias=False, classifier_bias=False),
}


def _config_view(raw: dict) -> SimpleNamespace:
    """config.json as attributes, with transformers' defaults for the keys the report reads."""
    values = {**FAMILIES.get(raw.get("model_type"), {"defaults": {}})["defaults"], **raw}
    # PretrainedConfig.num_labels is len(id2label), 2 when the file names no labels.
    values["num_labels"] = len(raw["id2label"]) if raw.get("id2label") else raw.get("num_labels", 2)
    values.setdefault("architectures", None)
    return SimpleNamespace(**values)


def _value(config, key: str, default=None):
    """A config value by its common name (DistilBERT calls hidden_size `dim`)."""
    names = FAMILIES.get(config.model_type, {"names": {}})["names"]
    return getattr(config, names.get(key, key), getattr(config, key, default))


def architecture(config) -> dict:
    """The shape of the network as named in the report (from a transformers config or config.json's dict)."""
    if isinstance(config, dict):
        config = _config_view(config)
    d_model, heads = _value(config, "hidden_size"), _value(config, "num_attention_heads")
    return {
        "model_type": config.model_type,
        "architecture": (getattr(config, "architectures", None) or ["?"])[0],
        "vocab_size": _value(config, "vocab_size"),
        "d_model": d_model,
        "d_ff": _value(config, "intermediate_size"),
        "layers": _value(config, "num_hidden_layers"),
        "heads": heads,
        "head_dim": d_model // heads if d_model and heads else None,
        "max_positions": _value(config, "max_position_embeddings"),
        "type_vocab_size": _value(config, "type_vocab_size", 0) or 0,
        # Factorised embeddings (ELECTRA, ALBERT) are narrower than the layers.
        "embedding_size": _value(config, "embedding_size") or d_model,
        "num_labels": _value(config, "num_labels"),
    }


def _module(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _longest_match(rest: str, parts) -> str | None:
    """The row whose sub-module path is the longest prefix of `rest` (DistilBERT's `ffn.lin2.` is
    not ALBERT's `ffn.`)."""
    matches = [(len(prefix), row) for row, prefixes in parts for prefix in prefixes if rest.startswith(prefix)]
    return max(matches)[1] if matches else None


def _classify_body(name: str) -> tuple[str, str]:
    albert, layer = _ALBERT_LAYER_RE.match(name), _LAYER_RE.match(name)
    if albert or layer:
        group = f"shared layer {albert[1]}.{albert[2]}" if albert else f"layer {layer[1]}"
        row = _longest_match((albert or layer).groups()[-1], _LAYER_PARTS)
        return (group, row) if row else ("other", _module(name))
    if name.startswith("embeddings."):
        row = _longest_match(name[len("embeddings."):], _EMBEDDING_PARTS)
        return ("embeddings", row) if row else ("other", _module(name))
    if name.startswith("pooler"):
        return "pooler", "pooler.dense"
    return "other", _module(name)  # e.g. ELECTRA's embeddings_project, DeBERTa's rel_embeddings


def classify_parameter(name: str, prefix: str | None = None) -> tuple[str, str]:
    """(group, row) of one parameter name, e.g. ("layer 0", "attention.query (Q)"). `prefix`: the
    base model's attribute in a head model (`bert`); None when the names are the base model's own."""
    if prefix is not None:
        if not name.startswith(prefix + "."):
            return "head", _module(name)  # outside the base model: keep the head's module path
        name = name[len(prefix) + 1:]
    return _classify_body(name)


# Order of sibling modules in the heads transformers builds, so the table reads top-down.
_HEAD_ORDER = ("transform", "dense", "LayerNorm", "layer_norm", "decoder", "out_proj")


def _row_order(row: tuple[str, str]) -> tuple:
    group, module = row
    if group == "embeddings":
        return (0, _EMBEDDING_ROWS.index(module), module)
    if group.startswith(("layer ", "shared layer ")):
        index = [int(part) for part in group.split()[-1].split(".")]
        return (1, *index, _LAYER_ROWS.index(module))
    if group == "pooler":
        return (2,)
    if group == "other":
        return (3, module)
    # A module's own parameters come before its children's.
    return (4, *[(_HEAD_ORDER.index(p) if p in _HEAD_ORDER else len(_HEAD_ORDER), p) for p in module.split(".")])


def _body_prefix(names, prefix: str | None) -> str | None:
    """The prefix of the base model's parameters, or None when the names are a base model's own."""
    return prefix if prefix and any(n.startswith(prefix + ".") for n in names) else None


def _table(sizes: dict[str, int], prefix: str | None) -> list[dict]:
    """Rows of (group, module, params), parameter name -> size, in display order."""
    prefix = _body_prefix(sizes, prefix)
    rows: dict[tuple[str, str], int] = {}
    for name, count in sizes.items():
        key = classify_parameter(name, prefix)
        rows[key] = rows.get(key, 0) + count
    return [{"group": group, "module": module, "params": rows[(group, module)]}
            for group, module in sorted(rows, key=_row_order)]


def module_table(model) -> list[dict]:
    """The per-module table of a loaded model; tied weights counted once (named_parameters)."""
    return _table({name: p.numel() for name, p in model.named_parameters()}, model.base_model_prefix)


def header_module_table(params: dict[str, list[int]], model_type: str = "bert") -> list[dict]:
    """The per-module table of `module_table`, from tensor shapes instead of a loaded model."""
    return _table({name: math.prod(shape) for name, shape in params.items()}, FAMILIES[model_type]["prefix"])


# ---- Closed forms: parameter counts from the config alone, one function per family.
# V vocabulary, d d_model, f d_ff, P max positions, T token types, E embedding width, n labels.

_BERT_LAYER = "4(d^2+d) + 2*d*f + f + d + 4d"


def _bert_layer(d: int, f: int) -> int:
    # Q, K, V, O projections with biases; two feed-forward matrices with biases; two layer norms.
    return 4 * (d * d + d) + 2 * d * f + f + d + 4 * d


def _layers(arch: dict, per_layer: int) -> dict[str, int]:
    return {f"layer {i}": per_layer for i in range(arch["layers"])}


def _embeddings(arch: dict, width: int, norm: int) -> int:
    return (arch["vocab_size"] + arch["max_positions"] + arch["type_vocab_size"]) * width + 2 * norm


def _bert(arch: dict, config) -> dict:
    d, f, e = arch["d_model"], arch["d_ff"], arch["embedding_size"]
    # ELECTRA's narrower embeddings are projected to d_model (only when they are narrower).
    project = e * d + d if e != d else 0
    return {"embeddings": _embeddings(arch, e, e), "layers": _layers(arch, _bert_layer(d, f)), "other": project,
            "formula": {"embeddings": "V*E + P*E + T*E + 2E" if e != d else "V*d + P*d + T*d + 2d",
                        "per_layer": _BERT_LAYER, "other": "E*d + d (embeddings_project)" if project else "0"}}


def _distilbert(arch: dict, config) -> dict:
    d = arch["d_model"]
    embeddings = (arch["vocab_size"] + arch["max_positions"]) * d + 2 * d  # no token types
    return {"embeddings": embeddings, "layers": _layers(arch, _bert_layer(d, arch["d_ff"])), "other": 0,
            "formula": {"embeddings": "V*d + P*d + 2d", "per_layer": _BERT_LAYER, "other": "0"}}


def _albert(arch: dict, config) -> dict:
    d, e = arch["d_model"], arch["embedding_size"]
    # num_hidden_groups groups of inner_group_num layers hold all the weights; every layer reuses them.
    groups, inner = config.num_hidden_groups, config.inner_group_num
    shared = {f"shared layer {g}.{j}": _bert_layer(d, arch["d_ff"]) for g in range(groups) for j in range(inner)}
    return {"embeddings": _embeddings(arch, e, e), "layers": shared, "other": e * d + d,
            "formula": {"embeddings": "V*E + P*E + T*E + 2E",
                        "per_layer": f"{_BERT_LAYER}, stored {groups * inner} time(s) for {arch['layers']} layers",
                        "other": "E*d + d (embedding_hidden_mapping_in)"}}


def _squeezebert(arch: dict, config) -> dict:
    d, f = arch["d_model"], arch["d_ff"]
    # Grouped 1x1 convolutions: out x (in / groups) weights plus out biases.
    per_layer = sum(d * d // getattr(config, key) + d for key in ("q_groups", "k_groups", "v_groups",
                                                                   "post_attention_groups"))
    per_layer += f * d // config.intermediate_groups + f + d * f // config.output_groups + d + 4 * d
    return {"embeddings": _embeddings(arch, arch["embedding_size"], d), "layers": _layers(arch, per_layer),
            "other": 0,
            "formula": {"embeddings": "V*E + P*E + T*E + 2d",
                        "per_layer": "d^2/g_q + d^2/g_k + d^2/g_v + d^2/g_post + 4d + f*d/g_int + f + d*f/g_out "
                                     "+ d + 4d", "other": "0"}}


def _pos_att_types(config) -> list[str]:
    value = getattr(config, "pos_att_type", None) or []
    return [x.strip() for x in value.lower().split("|")] if isinstance(value, str) else list(value)


def _deberta_v2(arch: dict, config) -> dict | None:
    if (getattr(config, "conv_kernel_size", 0) or 0) > 0:
        return None  # the optional convolution layer of some DeBERTa-v2 checkpoints is not written here
    d, e, v = arch["d_model"], arch["embedding_size"], arch["vocab_size"]
    embeddings = v * e + (arch["max_positions"] * e if getattr(config, "position_biased_input", True) else 0)
    embeddings += arch["type_vocab_size"] * e + 2 * d + (e * d if e != d else 0)
    relative = getattr(config, "relative_attention", False)
    # Separate position projections exist only when attention does not share the content keys.
    extra = 0 if not relative or getattr(config, "share_att_key", False) else (d * d + d) * sum(
        kind in _pos_att_types(config) for kind in ("c2p", "p2c"))
    other = 0
    if relative:
        buckets, max_rel = getattr(config, "position_buckets", -1), getattr(config, "max_relative_positions", -1)
        other = 2 * (buckets if buckets > 0 else max_rel if max_rel >= 1 else arch["max_positions"]) * d
        other += 2 * d if "layer_norm" in str(getattr(config, "norm_rel_ebd", "none")).lower() else 0
    return {"embeddings": embeddings, "layers": _layers(arch, _bert_layer(d, arch["d_ff"]) + extra), "other": other,
            "formula": {"embeddings": "V*E + [P*E] + T*E + 2d + [E*d]",
                        "per_layer": _BERT_LAYER + (" + relative position projections" if extra else ""),
                        "other": "2*buckets*d (rel_embeddings) + 2d (their layer norm)" if other else "0"}}


def _modernbert(arch: dict, config) -> dict:
    d, f = arch["d_model"], arch["d_ff"]
    norm = d * (1 + bool(getattr(config, "norm_bias", False)))
    attention_bias, mlp_bias = bool(getattr(config, "attention_bias", False)), bool(getattr(config, "mlp_bias", False))
    # Fused QKV and output projection; a gated feed-forward (Wi is 2f x d); pre-norm layers.
    body = 4 * d * d + 4 * d * attention_bias + 3 * d * f + (2 * f + d) * mlp_bias + norm
    # The first layer has no attention norm: the embeddings' norm precedes it.
    layers = {f"layer {i}": body + (norm if i else 0) for i in range(arch["layers"])}
    return {"embeddings": arch["vocab_size"] * d + norm, "layers": layers, "other": norm,
            "formula": {"embeddings": "V*d + norm", "per_layer": "4d^2 + 3*d*f + 2 norms (1 in layer 0) [+ biases]",
                        "other": "norm (final_norm)"}}


_BODY_FORMULAS = {"bert": _bert, "roberta": _bert, "xlm-roberta": _bert, "electra": _bert,
                  "distilbert": _distilbert, "albert": _albert, "squeezebert": _squeezebert,
                  "deberta-v2": _deberta_v2, "modernbert": _modernbert}
_HEAD_KINDS = (("ForMaskedLM", "masked_lm"), ("ForPreTraining", "pretraining"),
               ("ForSequenceClassification", "sequence_classification"), ("ForQuestionAnswering", "question_answering"))


def _head_kind(name: str) -> str | None:
    for suffix, kind in _HEAD_KINDS:
        if name.endswith(suffix):
            return kind
    return "base" if name.endswith("Model") else None


def _modernbert_head(d: int, config) -> int:
    return d * d + d * bool(getattr(config, "classifier_bias", False)) + d * (1 + bool(getattr(config, "norm_bias", False)))


def _mlm_head(arch: dict, config, tied_decoder: bool) -> tuple[int, str] | None:
    """The masked-LM head: a transform to the embedding width, its norm, the output bias, and the
    decoder matrix unless it is tied to the word embeddings."""
    family, v, d, e = arch["model_type"], arch["vocab_size"], arch["d_model"], arch["embedding_size"]
    if family in ("bert", "roberta", "xlm-roberta", "squeezebert", "deberta-v2"):
        # transformers 5 gives an untied decoder its own bias too (a tied one shares the head's bias).
        return (d * d + d + 2 * d + v + (0 if tied_decoder else v * d + v),
                "d^2 + d + 2d + V (+ V*d + V when the decoder is not tied)")
    if family == "distilbert":  # the projector's bias is its own, tied or not
        return d * d + d + 2 * d + v + (0 if tied_decoder else v * d), "d^2 + d + 2d + V (+ V*d untied)"
    if family in ("electra", "albert"):  # ELECTRA's generator head and ALBERT's project d to E
        untied = v * e + v * (family == "albert")  # ELECTRA's output layer has no bias of its own
        return (d * e + e + 2 * e + v + (0 if tied_decoder else untied),
                "d*E + E + 2E + V (+ V*E, ALBERT + V, when the decoder is not tied)")
    if family == "modernbert":
        bias = v * bool(getattr(config, "decoder_bias", True))
        return (_modernbert_head(d, config) + bias + (0 if tied_decoder else v * d),
                "d^2 + norm + V (decoder bias) (+ V*d untied)")
    return None


def _head(arch: dict, config, tied_decoder: bool) -> tuple[int, str] | None:
    """(parameters, formula) of the model's head, None where no formula is written here."""
    kind, family = _head_kind(arch["architecture"]), arch["model_type"]
    d, n = arch["d_model"], arch["num_labels"] or 2
    mlm = _mlm_head(arch, config, tied_decoder)
    if kind == "base":
        return 0, "0"
    if kind == "masked_lm":
        return mlm
    if kind == "pretraining" and family in ("bert", "albert"):  # + next-sentence / sentence-order head
        return mlm[0] + 2 * d + 2, mlm[1] + " + 2d + 2 (sentence-pair head)"
    if kind == "pretraining" and family == "electra":
        return d * d + d + d + 1, "d^2 + d + d + 1 (replaced-token detection)"
    if kind == "question_answering":
        if family == "modernbert":
            return _modernbert_head(d, config) + 2 * d + 2, "d^2 + norm + 2d + 2"
        return 2 * d + 2, "2d + 2"
    if kind == "sequence_classification":
        if family == "modernbert":
            return _modernbert_head(d, config) + d * n + n, "d^2 + norm + d*n + n"
        if family == "deberta-v2":  # its context pooler belongs to the head
            p = getattr(config, "pooler_hidden_size", None) or d
            return p * p + p + p * n + n, "p^2 + p + p*n + n (context pooler)"
        if family in ("roberta", "xlm-roberta", "electra", "distilbert"):  # a dense layer before the classifier
            return d * d + d + d * n + n, "d^2 + d + d*n + n"
        if family in _BODY_FORMULAS:
            return d * n + n, "d*n + n"
    return None


def closed_form(arch: dict, config=None, *, has_pooler: bool, tied_decoder: bool) -> dict:
    """Parameter counts derived from the config alone; "missing" names what has no formula here."""
    config = config if config is not None else SimpleNamespace(**arch)
    formula = _BODY_FORMULAS.get(arch["model_type"])
    body = formula(arch, config) if formula else None
    head = _head(arch, config, tied_decoder)
    missing = [f"no closed form for {arch['model_type']}" if body is None else None,
               f"no closed form for the {arch['architecture']} head" if head is None else None]
    result = {"missing": "; ".join(m for m in missing if m) or None, "head": head[0] if head else None,
              "formula": {"head": head[1] if head else "?"}}
    if body is None:
        return result
    d = arch["d_model"]
    pooler = d * d + d if has_pooler else 0
    encoder = sum(body["layers"].values())
    base = body["embeddings"] + encoder + pooler + body["other"]
    result.update({
        "embeddings": body["embeddings"], "layers": body["layers"], "per_layer": max(body["layers"].values()),
        "encoder": encoder, "pooler": pooler, "other": body["other"], "base_model": base,
        "total": base + head[0] if head else None,
    })
    result["formula"].update({**body["formula"], "pooler": "d^2 + d" if has_pooler else "0 (no pooler)"})
    return result


def check_counts(table: list[dict], expected: dict, arch: dict, source: str) -> None:
    """Raise when any counted group differs from its closed form (parts without one are not checked)."""
    if "layers" not in expected:
        return
    counted = _group_totals(table)
    wanted = {**{g: expected[g] for g in ("embeddings", "pooler", "other", "head", "total")
                 if expected.get(g) is not None}, **expected["layers"]}
    groups = set(wanted) | {g for g in counted if g.startswith(("layer ", "shared layer "))}
    problems = [f"{group}: counted {counted.get(group, 0):,}, formula {wanted.get(group, 0):,}"
                for group in sorted(groups) if counted.get(group, 0) != wanted.get(group, 0)]
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
    if not config.get("model_type"):
        raise DataError(f"{path}: no model_type; expected the config.json of a transformers model")
    return config


def load_model(model_dir: str | Path):
    """The saved model with the class its config names (BertForPreTraining, ...ForQuestionAnswering),
    or the base model (AutoModel) when it names no transformers class."""
    import transformers

    read_config(model_dir)
    config = transformers.AutoConfig.from_pretrained(model_dir)
    name = (config.architectures or [None])[0]
    model_class = getattr(transformers, name, None) if name else None
    if model_class is None:
        log.info("%s: architecture %r is not a transformers class; counting its base model", model_dir, name)
        model_class = transformers.AutoModel
    return model_class.from_pretrained(model_dir)


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


def _word_embeddings(params: dict[str, list[int]]) -> list[int]:
    names = [n for n in params if re.search(r"(^|\.)embeddings\.(word|tok)_embeddings\.weight$", n)]
    if len(names) != 1:
        raise DataError(f"expected one word-embedding tensor, found {names or 'none'}")
    return list(params[names[0]])


def _header_counts(model_dir: str | Path) -> dict | None:
    """Counts from config.json and the safetensors headers; None when they cannot be read that way
    (no safetensors file, a family or head without a formula, whose tied weights only a loaded
    model tells)."""
    config = read_config(model_dir)
    shapes = safetensors_shapes(model_dir)
    view = _config_view(config)
    arch = architecture(view)
    kind = _head_kind(arch["architecture"])
    # An MLM decoder is tied to the word embeddings; ELECTRA's pretraining head (the discriminator) has none.
    has_decoder = kind == "masked_lm" or (kind == "pretraining" and arch["model_type"] != "electra")
    tied = has_decoder and config.get("tie_word_embeddings", True)
    if shapes is None or arch["model_type"] not in FAMILIES or _head(arch, view, tied) is None:
        return None
    params = model_parameters(shapes, tied)
    total = sum(math.prod(shape) for shape in params.values())
    return {"arch": arch, "config": view, "table": header_module_table(params, arch["model_type"]), "tied": tied,
            "word_shape": _word_embeddings(params), "total": total,
            "trainable": total}  # from_pretrained leaves every parameter trainable


def _loaded_counts(model_dir: str | Path) -> dict:
    """The same counts from the model loaded with transformers."""
    model = load_model(model_dir)
    word = model.get_input_embeddings().weight
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {
        "arch": {**architecture(model.config), "architecture": type(model).__name__},
        "config": model.config,
        "table": module_table(model),
        "tied": output is not None and output.weight is word,
        "word_shape": list(word.shape),
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def count_parameters(model_dir: str | Path) -> dict:
    """Architecture, per-module table and totals, checked against the closed form where there is one.

    Read from config.json and the safetensors headers (milliseconds, no transformers import); a
    folder without safetensors, a family or head without a formula, or a file holding tensors the
    model does not use (e.g. a pretraining checkpoint's extra heads) is counted from the model
    transformers loads instead.
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
    expected = closed_form(counts["arch"], counts["config"], has_pooler=has_pooler, tied_decoder=counts["tied"])
    check_counts(counts["table"], expected, counts["arch"], source)
    return expected


def _counted_groups(table: list[dict]) -> dict[str, int]:
    totals = _group_totals(table)
    layers = {g: n for g, n in totals.items() if g.startswith(("layer ", "shared layer "))}
    return {"embeddings": totals.get("embeddings", 0), "encoder": sum(layers.values()),
            "per_layer": max(layers.values(), default=0), "pooler": totals.get("pooler", 0),
            "other": totals.get("other", 0), "head": totals.get("head", 0)}


def parameter_report(model_dir: str | Path, name: str) -> dict:
    """Architecture, counted and closed-form parameters, memory and the per-module table."""
    counts = count_parameters(model_dir)
    arch, expected, total, tied = counts["arch"], counts["expected"], counts["total"], counts["tied"]
    groups = _counted_groups(counts["table"])
    word_params = math.prod(counts["word_shape"])
    closed = {k: v for k, v in expected.items() if k != "layers"}
    return {
        "name": name,
        "model_dir": str(model_dir),
        **arch,
        "parameters": {
            "total": total,
            "trainable": counts["trainable"],
            **groups,
            # transformers' AutoModel of the family: everything but the pretraining or task head.
            "base_model": total - groups["head"],
            "tied_word_embeddings": tied,
        },
        # Every part that has a formula was checked (a mismatch fails above); `missing` names the rest.
        "closed_form": {**closed, "matches_counted": True},
        "word_embeddings": {"shape": counts["word_shape"], "params": word_params, "bytes": memory(word_params)},
        "memory_bytes": memory(total),
        "files": folder_sizes(model_dir),
        "modules": counts["table"],
        "environment": environment_info(),
    }


def _n(value) -> str:
    return "?" if value is None else f"{value:,}"


def closed_form_lines(report: dict) -> list[str]:
    cf, params = report["closed_form"], report["parameters"]
    lines = ["## Closed-form check", ""]
    if cf.get("missing"):
        lines += [f"{cf['missing'][0].upper()}{cf['missing'][1:]} in bertflow.params_report: "
                  + ("the parts below are checked, the rest is counted only." if "embeddings" in cf
                     else "the counts are from the saved weights only."), ""]
    if "embeddings" not in cf:
        return lines
    parts = [[part, cf["formula"].get(part, "?"), _n(cf.get(part))]
             for part in ("embeddings", "per_layer", "other", "pooler", "head")]
    total = f"embeddings + layers ({_n(cf['encoder'])}) + other + pooler + head"
    lines += table(["part", "formula", "parameters"], parts + [["**total**", total, f"**{_n(cf['total'])}**"]],
                   numeric={2})
    return lines + ["", f"Counted from the saved weights: {params['total']:,}"
                    + (" (matches)." if cf.get("total") == params["total"] else f"; base model {params['base_model']:,} "
                       f"(formula {_n(cf['base_model'])}, matches).")]


def report_markdown(report: dict) -> str:
    params, words = report["parameters"], report["word_embeddings"]
    lines = [f"# Parameter report: {report['name']}", "", f"`{report['architecture']}` from `{report['model_dir']}`", ""]
    lines += table(
        ["vocab size", "d_model", "d_ff", "layers", "heads", "head dim", "max positions", "parameters", "trainable"],
        [[_n(report["vocab_size"]), _n(report["d_model"]), _n(report["d_ff"]), _n(report["layers"]),
          _n(report["heads"]), _n(report["head_dim"]), _n(report["max_positions"]), f"{params['total']:,}",
          f"{params['trainable']:,}"]],
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
        f"{size(report['files']['folder_bytes'])} for the folder. Base model without the head: "
        f"{params['base_model']:,} parameters.",
        "",
        *closed_form_lines(report),
        "", "## Per module", "",
    ]
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
