"""Start-up checks: everything the config alone can answer, run when Snakemake parses the workflow.

rules/common.smk calls `coerce_overrides` and then `complete_config` (schema validation, defaults,
`check_config`), so that inconsistent settings (a sequence longer than the model's positions, a stride not below
its window, a GPT-2 folder as a baseline, ...) fail before the first job, with every problem
named by its config key. `check_device` and `check_multinode` run from `onstart` (see
rules/common.smk for why).
The stages repeat the checks that need data or a downloaded model, so nothing relies on this
module alone. Light imports only: the workflow parses on every `snakemake` call.
`python -m bertflow.checks FILE...` runs the same checks on config files without Snakemake.
"""

from __future__ import annotations

import ast
import copy
import functools
import glob
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import ConfigError, DataError, ResourceError
from .io import safetensors_problem
from .presets import architecture
from .tasks import QA_TASKS, configured_tasks, section_key, task_problems, task_section
from .tokenizer import BERT_ROLES, tokenizer_file_problems

# BertConfig's default, which pretrain.build_model uses when pretrain.model does not set it.
DEFAULT_MAX_POSITIONS = 512
# The transformers auto class a task's model is made with: question answering for SQuAD, sequence
# classification (or regression) for every other task; (class, its model_type -> class name mapping).
TASK_HEADS = {"qa": ("AutoModelForQuestionAnswering", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
              "sequence": ("AutoModelForSequenceClassification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES")}
# Special tokens a head's inputs need: padding for every batch; QA windows are built in the
# tokenizer's pair template and label an answer outside the window at the CLS token.
TASK_SPECIAL_TOKENS = {"sequence": ("pad_token",), "qa": ("pad_token", "cls_token", "sep_token")}


TASK_KIND_NAMES = {"classification": "a classification task", "regression": "a regression task",
                   "qa": "question answering"}


def task_head(task: str) -> str:
    """The head (TASK_HEADS) of a task, given by name or by kind (classification, regression, qa)."""
    return "qa" if task == "qa" or task in QA_TASKS else "sequence"


def task_where(task: str) -> str:
    """How a message names a task given by name (its config section) or by kind."""
    return TASK_KIND_NAMES.get(task, f"finetune.{task}")
# Families whose position ids count from pad_token_id + 1, so that max_position_embeddings holds
# pad_token_id + 1 positions fewer than it says (roberta-base: 514, of which 512 usable).
POSITIONS_AFTER_PAD = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "xmod",
                       "roberta-prelayernorm")
# Families whose layers the unpadded encoder (bertflow.unpadding) serves: BERT's layer layout
# (BertLayer's attention.self / attention.output / intermediate / output) with absolute positions.
UNPADDED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "electra")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
# The tasks a baseline is checked for when no task list is given: one of each head.
TASKS = ("sst2", "squad")
# The workflow's config folder (the defaults file and the schema) in a source checkout.
WORKFLOW_CONFIG = Path(__file__).resolve().parents[2] / "config"


# ----------------------------------------------------------------------------- --config overrides


def coerce_overrides(config: dict, overrides: dict, schema: dict) -> None:
    """Give `--config` values the type the schema expects, in place.

    Snakemake parses a top-level `--config seed=3` as a number, but the nested values of
    `--config pretrain='{"epochs": 5}'` with YAML's base loader, which keeps every scalar a string
    ('5', 'true', 'null'). Only strings the schema rejects as they are become the int, float, bool
    or null they spell; `overrides` (the `--config` dict) says which config entries came from there.
    """
    for key, value in overrides.items():
        sub = _property_schema(schema, key)
        if sub is None or key not in config:
            continue
        if isinstance(value, dict) and isinstance(config[key], dict):
            coerce_overrides(config[key], value, sub)
        else:
            config[key] = _coerce(config[key], sub)


def _property_schema(schema: dict, key: str) -> dict | None:
    sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
    return sub if isinstance(sub, dict) else None


def map_leaves(value, schema: dict, leaf):
    """`leaf(value, schema)` applied to every scalar of `value`, walking dicts and lists along
    their schema (in place for dicts); values the schema does not describe are left alone."""
    if isinstance(value, dict):
        for key in list(value):
            sub = _property_schema(schema, key)
            if sub is not None:
                value[key] = map_leaves(value[key], sub, leaf)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        return [map_leaves(item, items, leaf) for item in value] if isinstance(items, dict) else value
    return leaf(value, schema)


def _coerce(value, schema: dict):
    return map_leaves(value, schema, _coerce_string)


def _coerce_string(value, schema: dict):
    if not isinstance(value, str) or _valid(value, schema):
        return value
    for candidate in _spellings(value):
        if _valid(candidate, schema):
            return candidate
    return value


def integral_floats_to_int(config: dict, schema: dict) -> None:
    """`epochs: 3.0` passes JSON Schema's `integer` (it accepts integral floats) but breaks `range()`
    in a stage: make such values ints wherever the schema asks for an integer and not a number."""
    map_leaves(config, schema, _integral_float_to_int)


def _integral_float_to_int(value, schema: dict):
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, float) and value.is_integer() and "integer" in types and "number" not in types:
        return int(value)
    return value


def _spellings(text: str) -> list:
    """What a string can mean: YAML's reading ('true', 'null', '5'), then int and float ('1e-3',
    which YAML 1.1 leaves a string)."""
    values = []
    try:
        values.append(yaml.safe_load(text))
    except yaml.YAMLError:
        pass
    for kind in (int, float):
        try:
            values.append(kind(text))
        except ValueError:
            pass
    return values


def _valid(value, schema: dict) -> bool:
    import jsonschema

    return jsonschema.Draft202012Validator(schema).is_valid(value)


def load_schema(path: str) -> dict:
    """The schema with its `$ref`s to `#/$defs/...` merged in place, so that the walks above (and
    the key descriptions in error messages) follow `properties` only; Snakemake validates the file."""
    with open(path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    return _inline_refs(schema, schema)


def _inline_refs(node, root: dict):
    if isinstance(node, list):
        return [_inline_refs(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _inline_refs(value, root) for key, value in node.items()}
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    if not ref.startswith("#/$defs/"):
        raise ConfigError(f"config schema: only local '#/$defs/...' references are supported, not {ref!r}")
    target = _inline_refs(root["$defs"][ref.removeprefix("#/$defs/")], root)
    merged = {**target, **node, "properties": {**target.get("properties", {}), **node.get("properties", {})}}
    if merged.pop("unevaluatedProperties", None) is False:  # = no keys beyond the merged properties
        merged["additionalProperties"] = False
    return merged


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Every schema violation as `key.path: what is wrong (the key's description)`: Snakemake's own
    validation shows only the first one, with a dump of the schema instead of the key's meaning."""
    import jsonschema

    problems = []
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(map(str, error.absolute_path)) or "(top level)"
        hint = _description(schema, list(error.absolute_schema_path))
        problems.append(f"{key}: {error.message}" + (f" ({' '.join(hint.split())})" if hint else ""))
    return problems


def _description(schema: dict, schema_path: list) -> str | None:
    """The description nearest to the failing keyword along its schema path."""
    found, node = None, schema
    for step in schema_path[:-1]:
        node = node[step] if isinstance(node, (dict, list)) else None
        if isinstance(node, dict) and node.get("description"):
            found = node["description"]
    return found


def validate_config(config: dict, schema: dict) -> None:
    problems = schema_problems(config, schema)
    if problems:
        raise ConfigError("the config does not match config/config.schema.yaml:\n  - " + "\n  - ".join(problems))


# ----------------------------------------------------------------------------- the whole config

# The Hub's SQuAD datasets by version (finetune.squad.version_2_with_negative), under both ids.
SQUAD_HUB_DATASETS = {False: ("squad", "rajpurkar/squad"), True: ("squad_v2", "rajpurkar/squad_v2")}


def fill_derived_defaults(config: dict) -> None:
    """Defaults that depend on another key (after the schema's own): the SQuAD Hub dataset of the
    chosen version."""
    squad = config["finetune"]["squad"]
    if squad["hub"]["name"] is None:
        squad["hub"]["name"] = SQUAD_HUB_DATASETS[squad["version_2_with_negative"]][0]


def squad_version_problems(squad: dict) -> list[str]:
    """A Hub SQuAD dataset of the other version than finetune.squad.version_2_with_negative."""
    v2, name = squad["version_2_with_negative"], squad["hub"]["name"]
    if squad["source"] != "hub" or name not in SQUAD_HUB_DATASETS[not v2]:
        return []
    return [f"finetune.squad.hub.name {name!r} is SQuAD {'v1.1' if v2 else 'v2.0'} but "
            f"finetune.squad.version_2_with_negative is {str(v2).lower()}; use {SQUAD_HUB_DATASETS[v2][0]!r} "
            f"or set version_2_with_negative: {str(not v2).lower()}"]



def check_config(config: dict) -> None:
    """Raise one ConfigError that lists every inconsistency of a validated config (defaults filled)."""
    problems = [
        *local_corpus_problems(config["corpus"]),
        *special_token_problems(config["tokenizer"]),
        *pretrain_problems(config["pretrain"]),
        *finetune_problems(config["finetune"], pretrained_positions(config["pretrain"])),
        *benchmark_problems(config["benchmark"], pretrained_positions(config["pretrain"])),
        *model_name_problems(config),
    ]
    if problems:
        raise ConfigError("the config cannot run:\n  - " + "\n  - ".join(problems))


def pretrained_positions(pretrain: dict) -> int:
    return pretrain.get("model", {}).get("max_position_embeddings") or DEFAULT_MAX_POSITIONS


def local_corpus_problems(corpus: dict) -> list[str]:
    """Corpus patterns that match folders, or training files that are all empty (file sizes only:
    a pattern matching nothing is reported by the glob expansion in rules/common.smk)."""
    if corpus["source"] != "local":
        return []
    problems = []
    for split in ("train", "validation"):
        for pattern in corpus["local"][split]:
            folders = [path for path in glob.glob(os.path.expanduser(pattern)) if os.path.isdir(path)]
            if folders:
                problems.append(f"corpus.local.{split}: {pattern!r} matches folder(s) {folders[:3]}; give files, "
                                f"e.g. '{folders[0].rstrip('/')}/*.txt'")
    train = [path for pattern in corpus["local"]["train"] for path in glob.glob(os.path.expanduser(pattern))
             if os.path.isfile(path)]
    if train and all(os.path.getsize(path) == 0 for path in train):
        problems.append(f"corpus.local.train: every matched file is empty ({', '.join(train[:3])})")
    return problems


def special_token_problems(tokenizer: dict) -> list[str]:
    missing = sorted(set(BERT_ROLES.values()) - set(tokenizer["special_tokens"]))
    return [f"tokenizer.special_tokens: missing BERT tokens {missing}"] if missing else []


def pretrain_problems(pretrain: dict) -> list[str]:
    problems = []
    try:
        architecture(pretrain["preset"], pretrain.get("model"))
    except ConfigError as err:
        problems.append(str(err))
    positions = pretrained_positions(pretrain)
    if pretrain["seq_len"] > positions:
        problems.append(f"pretrain.seq_len {pretrain['seq_len']} exceeds the model's max_position_embeddings "
                        f"{positions}; lower seq_len or raise pretrain.model.max_position_embeddings")
    return problems


def finetune_problems(finetune: dict, positions: int) -> list[str]:
    problems = task_problems(finetune)
    if problems:  # an unknown task has no section to check further
        return problems
    tasks = configured_tasks(finetune)
    for task in tasks:
        key, section = section_key(finetune, task), task_section(finetune, task)
        max_length = section["max_length"]
        if max_length > positions:
            problems.append(f"{key}.max_length {max_length} exceeds the pretrained model's "
                            f"max_position_embeddings {positions} (pretrain.model.max_position_embeddings); "
                            f"lower max_length")
        problems += local_task_file_problems(key, section)
    squad = finetune["squad"]
    if squad["doc_stride"] >= squad["max_length"]:
        problems.append(f"finetune.squad.doc_stride {squad['doc_stride']} must be less than max_length "
                        f"{squad['max_length']} (consecutive windows share doc_stride tokens)")
    problems += squad_version_problems(squad)
    for name, source in finetune["baselines"].items():
        folder = os.path.expanduser(source)
        if os.path.isdir(folder):
            problems += model_folder_problems(folder, f"finetune.baselines.{name}",
                                              {task: task_section(finetune, task)["max_length"] for task in tasks},
                                              {task: task_section(finetune, task)["unpad"] for task in tasks})
    return problems


def benchmark_problems(benchmark: dict, positions: int) -> list[str]:
    """Sweep points beyond the pretrained model's positions are skipped: a sweep left empty is an error."""
    if not benchmark["enabled"]:
        return []
    problems = []
    if benchmark["fixed_seq_len"] > positions:
        problems.append(f"benchmark.fixed_seq_len {benchmark['fixed_seq_len']} exceeds the pretrained model's "
                        f"max_position_embeddings {positions}: the batch-size sweep would be empty")
    if min(benchmark["seq_lens"]) > positions:
        problems.append(f"benchmark.seq_lens {benchmark['seq_lens']} all exceed the pretrained model's "
                        f"max_position_embeddings {positions}: the sequence-length sweep would be empty")
    return problems


def unused_source_warnings(config: dict) -> list[str]:
    """Settings of a data source the config does not use: usually a forgotten `source: local`."""
    sections = [("corpus", config["corpus"], ("train", "validation"))]
    sections += [(f"finetune.{task}", config["finetune"][task], ("train", "validation"))
                 for task in configured_tasks(config["finetune"]) if "source" in config["finetune"].get(task, {})]
    return [f"{key}.local.{split} is set but {key}.source is {section['source']!r}: the file is not used "
            f"(set {key}.source: local to use it)"
            for key, section, splits in sections if section["source"] != "local"
            for split in splits if section["local"].get(split)]


def local_task_file_problems(key: str, section: dict) -> list[str]:
    """Local task files (of `key`, a task's config section) that exist but cannot be data (a folder,
    an empty file); a missing one is reported by the glob expansion in rules/common.smk."""
    if "source" not in section:  # finetune.custom.<name>: its files are train and validation
        files = {split: section[split] for split in ("train", "validation")}
    elif section["source"] == "local":
        files = {f"local.{split}": path for split, path in section["local"].items()
                 if split in ("train", "validation", "validation_mismatched")}
    else:
        return []
    problems = []
    for name, path in files.items():
        if path is None:
            continue
        path = os.path.expanduser(path)
        if os.path.isdir(path):
            problems.append(f"{key}.{name}: {path!r} is a folder; give the file")
        elif os.path.isfile(path) and os.path.getsize(path) == 0:
            problems.append(f"{key}.{name}: {path!r} is empty")
    return problems


def model_name_problems(config: dict) -> list[str]:
    """Model names become folders (results/finetune/<task>/<name>) and benchmark labels
    (<name>-<task>): two names must never share one, also on case-insensitive file systems."""
    names = ["pretrained", *config["finetune"]["baselines"]]
    problems = []
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            problems.append(f"finetune.baselines: names {other!r} and {name!r} differ only in case "
                            "(one folder on macOS/Windows file systems); rename one")
    if config["benchmark"]["enabled"] and config["benchmark"]["include_finetuned"]:
        labels = {f"{model}-{task}".lower() for model in names for task in configured_tasks(config["finetune"])}
        problems += [f"finetune.baselines.{name}: the name is also the inference benchmark's label of a "
                     "fine-tuned model; rename it" for name in names if name.lower() in labels]
    return problems


# ----------------------------------------------------------------------------- model folders


@functools.cache
def auto_model_types(mapping: str) -> frozenset[str]:
    """The model types of one of transformers' auto mappings (MODEL_FOR_..._MAPPING_NAMES), read from
    the source of transformers.models.auto.modeling_auto: importing it takes seconds (torch,
    generation), too long for every `snakemake` call. tests/test_families.py checks that this reading
    equals the imported mapping."""
    spec = importlib.util.find_spec("transformers")
    source = Path(spec.origin).parent / "models" / "auto" / "modeling_auto.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == mapping for t in node.targets):
            pairs = node.value.args[0].elts  # OrderedDict([("bert", "BertFor..."), ...])
            return frozenset(pair.elts[0].value for pair in pairs)
    raise ConfigError(f"transformers {source}: no {mapping}; this transformers version is not supported")


def model_type_problems(model_config: dict, source: str, key: str, tasks) -> list[str]:
    """A model type fine-tuning cannot make a task model of: no transformers auto class for the task,
    a decoder-only or encoder-decoder model."""
    model_type = model_config.get("model_type")
    accepted = "an encoder with an AutoModelForSequenceClassification / AutoModelForQuestionAnswering class"
    if model_config.get("is_decoder") or (model_type in auto_model_types("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES")
                                          and model_type not in auto_model_types("MODEL_FOR_MASKED_LM_MAPPING_NAMES")):
        return [f"{key}: {source} has model_type {model_type!r}, a decoder-only model; fine-tuning takes {accepted} "
                "(BERT, RoBERTa, ELECTRA, DeBERTa, ModernBERT, ...)"]
    if model_config.get("is_encoder_decoder") or model_type in auto_model_types(
            "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"):
        return [f"{key}: {source} has model_type {model_type!r}, an encoder-decoder model; fine-tuning takes "
                f"{accepted}"]
    return [f"{key}: {source} has model_type {model_type!r}, which has no {TASK_HEADS[task_head(task)][0]} class "
            f"in transformers ({task_where(task)}); fine-tuning takes {accepted}"
            for task in tasks if model_type not in auto_model_types(TASK_HEADS[task_head(task)][1])]


def usable_positions(model_config: dict) -> int | None:
    """The longest input the model's position embeddings take; None: no absolute positions
    (DeBERTa-v2/v3 with relative positions only)."""
    if model_config.get("model_type") == "deberta-v2" and not model_config.get("position_biased_input", True):
        return None
    positions = model_config.get("max_position_embeddings", DEFAULT_MAX_POSITIONS)
    if model_config.get("model_type") in POSITIONS_AFTER_PAD:
        positions -= (model_config.get("pad_token_id") or 0) + 1
    return positions


def tokenizer_problems(key: str, source: str, tokenizer_size: int, special_tokens: dict, vocab_size: int,
                       tasks) -> list[str]:
    """A tokenizer that does not belong to the model: ids beyond its embedding rows, or without the
    special tokens a task's inputs need (`special_tokens`: role -> token or None)."""
    problems = []
    if tokenizer_size > vocab_size:
        problems.append(f"{key}: {source} has {tokenizer_size} tokens but the model's embedding has {vocab_size} "
                        "rows (config.json vocab_size); the tokenizer does not belong to this model")
    for task in tasks:
        needed = TASK_SPECIAL_TOKENS[task_head(task)]
        missing = [role for role in needed if not special_tokens.get(role)]
        if missing:
            problems.append(f"{key}: {source} has no {' / '.join(missing)}, which {task_where(task)} needs "
                            f"(expected the tokenizer's {' and '.join(needed)})")
    return problems


def saved_tokenizer_problems(folder: str, key: str, vocab_size: int, tasks) -> list[str]:
    """tokenizer_problems from the saved files (tokenizer.json, tokenizer_config.json), without
    loading the tokenizer; a folder with other tokenizer files is checked when the stage loads it."""
    json_path = Path(folder, "tokenizer.json")
    if not json_path.is_file():
        return []
    settings = {}
    try:
        definition = json.loads(json_path.read_text(encoding="utf-8"))
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # older folders: the map only
            if Path(folder, name).is_file():
                settings.update(json.loads(Path(folder, name).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return [f"{key}: a tokenizer file in {folder} is not valid JSON ({err})"]
    vocab = definition.get("model", {}).get("vocab") or {}
    tokens = set(vocab) if isinstance(vocab, dict) else {piece for piece, _ in vocab}
    ids = [*vocab.values()] if isinstance(vocab, dict) else [len(vocab) - 1]
    for added in definition.get("added_tokens", []):
        tokens.add(added["content"])
        ids.append(added["id"])
    special = {}
    for role in ("pad_token", "cls_token", "sep_token", "mask_token"):
        token = settings.get(role)
        token = token.get("content") if isinstance(token, dict) else token
        special[role] = token if token in tokens else None
    return tokenizer_problems(key, str(json_path), max(ids, default=-1) + 1, special, vocab_size, tasks)


def model_folder_problems(folder: str, key: str, max_lengths: dict[str, int] | None = None,
                          unpad: dict[str, object] | None = None, tasks=None) -> list[str]:
    """What keeps a model folder from being fine-tuned here: no config.json, a model type without the
    tasks' auto classes (decoder-only, encoder-decoder), no tokenizer or one that does not match the
    model, fewer positions than a task's max_length, `unpad: true` (per task in `unpad`) for a family
    the unpadded encoder does not serve. `tasks`: those the model is for (default: those of
    `max_lengths`, else all)."""
    config_path = Path(folder, "config.json")
    if not config_path.is_file():
        return [f"{key}: {folder} has no config.json; expected a model folder (save_pretrained)"]
    try:
        model_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return [f"{key}: {config_path} is not valid JSON ({err})"]
    tasks = list(tasks or max_lengths or TASKS)
    problems = model_type_problems(model_config, str(config_path), key, tasks)
    if problems:
        return problems
    if not any(Path(folder, name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"{key}: {folder} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the "
                        "tokenizer next to the model (tokenizer.save_pretrained)")
    problems += [f"{key}: {problem}" for problem in map(safetensors_problem, sorted(Path(folder).glob("*.safetensors")))
                 if problem]
    damaged = [f"{key}: {problem}" for problem in tokenizer_file_problems(folder)]
    # A damaged tokenizer file is named once; its contents are checked only when it can be read.
    problems += damaged or saved_tokenizer_problems(folder, key, model_config.get("vocab_size", 0), tasks)
    positions = usable_positions(model_config)
    for task, max_length in (max_lengths or {}).items():
        if positions is not None and max_length > positions:
            setting = (f"max_length {max_length} ({TASK_KIND_NAMES[task]})" if task in TASK_KIND_NAMES
                       else f"finetune.{task}.max_length {max_length}")
            problems.append(f"{key}: {setting} exceeds the model's {positions} "
                            f"positions (max_position_embeddings in {config_path}); lower max_length")
    for task, setting in (unpad or {}).items():
        refusal = unpadding_refusal(model_config)
        if setting is True and refusal:
            problems.append(f"{key}: finetune.{task}.unpad is true but {refusal}; set unpad: auto or false")
    return problems


def unpadding_refusal(model_config: dict) -> str | None:
    """Why the unpadded encoder cannot serve this model (None: it can)."""
    model_type = model_config.get("model_type")
    if model_type not in UNPADDED_MODEL_TYPES:
        return (f"the unpadded encoder serves model_type {' / '.join(UNPADDED_MODEL_TYPES)} (BERT's layer layout), "
                f"not {model_type!r}")
    if model_config.get("is_decoder") or model_config.get("add_cross_attention"):
        return f"this {model_type} is a decoder (is_decoder / add_cross_attention)"
    if model_config.get("chunk_size_feed_forward"):
        return f"this {model_type} sets chunk_size_feed_forward (feed-forward in chunks)"
    if model_config.get("position_embedding_type", "absolute") != "absolute":
        return f"this {model_type} has {model_config['position_embedding_type']} position embeddings, not absolute"
    return None


def require_supported_model(folder: str, key: str = "model", max_lengths: dict[str, int] | None = None,
                            tasks=None) -> None:
    """Job-time check of a model folder (a Hub baseline exists only after download_model)."""
    problems = model_folder_problems(folder, key, max_lengths, tasks=tasks)
    if problems:
        raise DataError("; ".join(problems))


def require_supported_model_type(model_config: dict, source: str, key: str = "model") -> None:
    """A Hub model's config.json, before its weights are downloaded."""
    problems = model_type_problems(model_config, source, key, TASKS)
    if problems:
        raise ConfigError("; ".join(problems))


# ----------------------------------------------------------------------------- device


# Executors under which a pretraining run may span nodes: SLURM's, and its job step inside the job.
MULTINODE_EXECUTORS = ("slurm", "slurm-jobstep")
# bertflow.block_files.META, named here so that the start-up checks need not import numpy.
BLOCKS_META = "blocks_meta.json"


def check_multinode(pretrain: dict, executor: str, blocks_dir: str) -> None:
    """`pretrain.nodes` > 1 needs a SLURM allocation (srun starts the nodes' agents), and the
    training blocks must fill one global batch of the whole world (checked when they exist;
    pretraining checks again before it launches)."""
    problems = multinode_problems(pretrain, executor)
    meta = Path(blocks_dir, BLOCKS_META)
    if meta.is_file():
        problems += world_size_problems(pretrain, json.loads(meta.read_text()), blocks_dir)
    if problems:
        raise ConfigError("the config cannot run:\n  - " + "\n  - ".join(problems))


def multinode_problems(pretrain: dict, executor: str) -> list[str]:
    nodes = pretrain["nodes"]
    if nodes < 1:
        return [f"pretrain.nodes is {nodes}; expected 1 or more"]
    if nodes > 1 and executor not in MULTINODE_EXECUTORS:
        return [f"pretrain.nodes is {nodes}, but the {executor!r} executor runs every job on one machine: run "
                "through SLURM (snakemake --workflow-profile profiles/slurm, docs/scaling-out.md) or set "
                "pretrain.nodes: 1"]
    return []


def world_size_problems(pretrain: dict, meta: dict, blocks_dir: str) -> list[str]:
    """The world size (nodes x num_processes) times the per-process batch must fit the training blocks."""
    world = pretrain["nodes"] * pretrain["num_processes"]
    global_batch = pretrain["batch_size"] * world * pretrain["grad_accum"]
    blocks = meta.get("train_blocks", 0)
    if blocks >= global_batch:
        return []
    return [f"{blocks_dir}: {blocks} training blocks are fewer than one global batch of {global_batch} "
            f"(pretrain.batch_size {pretrain['batch_size']} x {world} processes (pretrain.nodes {pretrain['nodes']} "
            f"x num_processes {pretrain['num_processes']}) x grad_accum {pretrain['grad_accum']}); add text, or "
            "lower pretrain.batch_size, nodes or num_processes"]


def check_device(device: str) -> None:
    """`device: cuda` without a visible GPU. torch is asked in a child process, so the Snakemake
    process neither pays for the import (about 2 s) nor holds a CUDA state; only for `cuda`."""
    if device != "cuda":
        return
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        detail = probe.stderr.strip().splitlines()[-1:] or ["torch.cuda.is_available() is False"]
        raise ResourceError(f"config device: 'cuda' but no GPU is visible here ({detail[0]}, "
                            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                            "set device: auto or cpu, or run on a GPU node")


# ----------------------------------------------------------------------------- config files


def config_file_problem(path: str) -> str | None:
    """Why Snakemake would refuse a --configfile (its message names neither file nor line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return f"{path}: cannot read ({err})"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        reason = getattr(err, "problem", None) or str(err)
        return (f"{path}: YAML syntax error at {where}: {reason} "
                "(a tab in the indentation, an unclosed bracket or quote?)")
    if data is None:
        return f"{path}: empty (no keys); give at least one key, e.g. `seed: 1`"
    if not isinstance(data, dict):
        return f"{path}: top level is a {type(data).__name__}, expected keys (`section: value`)"
    return None


def fill_defaults(config: dict, schema: dict) -> None:
    """The schema's defaults for the keys a config leaves out, section by section, as Snakemake's
    `validate` fills them (so the config is validated once, by `validate_config`)."""
    for key, spec in schema.get("properties", {}).items():
        if key not in config and "default" in spec:
            config[key] = copy.deepcopy(spec["default"])
        if isinstance(config.get(key), dict):
            fill_defaults(config[key], spec)
    # Sections named by the user (finetune.custom.<name>, ...) take their schema's defaults too.
    named = schema.get("additionalProperties")
    if isinstance(named, dict):
        for key, value in config.items():
            if key not in schema.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, named)


def complete_config(config: dict, schema: dict) -> None:
    """What the workflow's start does to a merged config, in place: every schema violation listed at
    once, the schema's defaults filled in (and those that depend on another key), integral floats
    made ints, then the cross-key checks."""
    fill_defaults(config, schema)
    validate_config(config, schema)  # the defaults too
    integral_floats_to_int(config, schema)
    fill_derived_defaults(config)
    check_config(config)


def workflow_config(config_files: list[str], config_dir: Path = WORKFLOW_CONFIG) -> dict:
    """The config a `snakemake --configfile FILE...` run sees: the defaults file, each file's keys
    merged over it in order, then completed and checked as the workflow's start does."""
    from snakemake.utils import update_config

    problems = [problem for problem in map(config_file_problem, config_files) if problem]
    if problems:
        raise ConfigError("\n".join(problems))
    config = yaml.safe_load(Path(config_dir, "config.yaml").read_text(encoding="utf-8"))
    for path in config_files:
        update_config(config, yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    schema_file = str(Path(config_dir, "config.schema.yaml"))
    complete_config(config, load_schema(schema_file))
    return config


def main(argv: list[str] | None = None) -> int:
    """`python -m bertflow.checks FILE...`: the workflow's start-up checks on the defaults file with
    FILE... merged over it in order, without starting Snakemake; exit status 1 on any problem."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bertflow.checks", description=main.__doc__)
    parser.add_argument("files", nargs="+", metavar="FILE", help="config files, as given to --configfile")
    files = parser.parse_args(argv).files
    try:
        config = workflow_config(files)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    for warning in unused_source_warnings(config):
        print(f"config warning: {warning}", file=sys.stderr)
    print(f"{', '.join(files)}: the config passes the start-up checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
