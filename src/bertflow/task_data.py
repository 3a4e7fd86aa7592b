"""Fine-tuning data: the GLUE tasks, text tasks of the config's own files, and SQuAD v1.1 / v2.0,
from generated, local or Hub-on-disk sources, validated.

Everything is normalised to one format per kind in results/data/<task>/: a classification or
regression task as a TSV with a header (`sentence<TAB>label`, or `sentence1<TAB>sentence2<TAB>label`
for pairs; MNLI's validation file adds a `validation_set` column), the label as its data files
write it; SQuAD as the official v1.1 or v2.0 JSON. Problems are reported with the file, line and
column (or article/question id) before any training starts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from typing import NamedTuple

from .errors import DataError
from .io import read_json, read_text, write_json, write_text
from .tasks import GLUE_TASKS, PAIR_COLUMNS, REGRESSION, VALIDATION_SET_COLUMN, TextTask

log = logging.getLogger(__name__)

# The prepared files of each task under results/data/<task>/ (train, validation), and the keys of a
# `finetune.<task>` section that choose the data rather than the training (rules/common.smk and the
# fine-tuning sweep read both from here).
TEXT_TASK_FILES = ("train.tsv", "validation.tsv")
TASK_DATA_FILES = {**{name: TEXT_TASK_FILES for name in GLUE_TASKS}, "squad": ("train.json", "validation.json")}
DATA_SOURCE_KEYS = ("source", "generated", "local", "hub", "version_2_with_negative")
# The keys of a `finetune.custom.<name>` section that define its data (the rest are training settings).
CUSTOM_DATA_KEYS = ("train", "validation", "format", "text_columns", "label_column", "kind", "label")
CUSTOM_FORMATS = ("csv", "tsv", "json", "jsonl")


def prepared_files(task: str) -> tuple[str, str]:
    """The prepared (train, validation) file names of a task under results/data/<task>/."""
    return TASK_DATA_FILES.get(task, TEXT_TASK_FILES)


# ----------------------------------------------------------------------------- shared readers


def require_examples(rows: list, source: str) -> list:
    if not rows:
        raise DataError(f"{source}: no examples (empty split)")
    return rows


def hub_split(dataset_dir: str, split: str):
    """One split of a dataset saved by the download rule (`save_to_disk`)."""
    import datasets

    if not Path(dataset_dir).is_dir():
        raise DataError(f"{dataset_dir}: no saved dataset; run the download rule first")
    try:
        data = datasets.load_from_disk(dataset_dir)
    except Exception as err:  # datasets raises FileNotFoundError, IndexError, ... for broken folders
        raise DataError(f"{dataset_dir}: cannot load the saved dataset ({err!r}); delete the folder and "
                        "run the download rule again") from err
    if split not in data:
        raise DataError(f"{dataset_dir}: split {split!r} not found; has {list(data)}")
    return data[split]


# ----------------------------------------------------------------------------- text tasks (GLUE, custom)


class Example(NamedTuple):
    """One row of a classification/regression task: its text(s), its label as the file writes it,
    where it came from (for error messages) and, for validation, its validation set (MNLI)."""

    texts: tuple
    label: str
    where: str  # "line 12" of a file, "record 3" of a JSON list, "row 7" of a Hub split
    validation_set: str = ""


def read_text_file(path: str) -> str:
    """A data file's text (a UTF-8 BOM, as MRPC's files start with, is dropped); one that is missing
    or not UTF-8 is a DataError naming the file, line and byte (bertflow.io.read_text)."""
    return read_text(path, "data file").removeprefix("\ufeff")


def tsv_rows(path: str, quoting: int = csv.QUOTE_NONE, delimiter: str = "\t"):
    """(line number, cells) of a delimited file; GLUE TSVs need QUOTE_NONE (unbalanced quotes)."""
    reader = csv.reader(io.StringIO(read_text_file(path), newline=""), delimiter=delimiter, quoting=quoting)
    for row in reader:
        if row:
            yield reader.line_num, row


def header_index(header: list[str], name: str, path: str, task: TextTask, key: str = "column") -> int:
    if name in header:
        return header.index(name)
    hint = ""
    if task.pair and sum(column in header for column in ("sentence", "text", "question")) == 1:
        hint = f"; {task.name} is a sentence-pair task and needs two text columns, the file has one"
    raise DataError(f"{path}, line 1: missing {key} {name!r} (header: {', '.join(header)}){hint}")


def read_glue_tsv(path: str, task: TextTask) -> list[Example]:
    """A GLUE task's TSV in the layout of GLUE's download script (see bertflow.tasks.GLUE_TASKS)."""
    layout = task.layout
    rows = tsv_rows(path)
    wanted = (*layout.text, layout.label)
    width = None
    if layout.header:
        _, header = next(rows, (1, []))
        wanted = tuple(header_index(header, name, path, task) for name in wanted)
        width = len(header)
    examples = []
    for line, row in rows:
        if (width is not None and len(row) != width) or len(row) <= max(wanted):
            raise DataError(f"{path}, line {line}: expected {width or max(wanted) + 1} tab-separated columns, got "
                            f"{len(row)}; a tab inside a text?")
        examples.append(Example(tuple(row[i] for i in wanted[:-1]), row[wanted[-1]].strip(), f"line {line}"))
    return require_examples(examples, path)


def read_hub_task(dataset_dir: str, split: str, task: TextTask) -> list[Example]:
    """A split of the Hub's glue/<task> saved by the download rule; class ids become the label values."""
    data = hub_split(dataset_dir, split)
    source = f"{dataset_dir} (split {split})"
    columns = (*task.layout.hub_text, "label")
    missing = sorted(set(columns) - set(data.column_names))
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; expected the glue/{task.name} layout")
    examples = []
    for index, row in enumerate(data):
        label = row["label"]
        if task.kind == REGRESSION:
            value = str(float(label))
        elif isinstance(label, int) and 0 <= label < len(task.labels):
            value = task.labels[label]
        else:
            raise DataError(f"{source}, row {index}: label {label!r} is not a class id 0-{len(task.labels) - 1} "
                            "(the GLUE test split has no labels; evaluate on validation)")
        examples.append(Example(tuple(row[c] for c in task.layout.hub_text), value, f"row {index}"))
    return require_examples(examples, source)


def custom_format(section: dict, path: str) -> str:
    fmt = section.get("format") or Path(path).suffix.lstrip(".").lower()
    if fmt not in CUSTOM_FORMATS:
        raise DataError(f"{path}: cannot tell the format from the file name; set format to one of "
                        f"{', '.join(CUSTOM_FORMATS)}")
    return fmt


def custom_records(path: str, fmt: str):
    """(where, record) pairs of a custom task's file; `where` names the line (or JSON record)."""
    if fmt in ("csv", "tsv"):
        rows = tsv_rows(path, csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL, "\t" if fmt == "tsv" else ",")
        _, header = next(rows, (1, []))
        for line, row in rows:
            if len(row) != len(header):
                raise DataError(f"{path}, line {line}: expected {len(header)} columns (header: "
                                f"{', '.join(header)}), got {len(row)}")
            yield f"line {line}", dict(zip(header, row))
        return
    text = read_text_file(path)
    if fmt == "jsonl":
        records = [(f"line {n}", line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        for where, line in records:
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, {where}: not valid JSON ({err})") from None
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    data = data.get("data") if isinstance(data, dict) else data
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records (or an object with a 'data' list)")
    yield from ((f"record {n}", record) for n, record in enumerate(data, 1))


def read_custom(path: str, section: dict, task: TextTask) -> list[Example]:
    """A custom task's file: the text column(s) and the label column of finetune.custom.<name>."""
    fmt = custom_format(section, path)
    columns = (*section["text_columns"], section["label_column"])
    examples = []
    for where, record in custom_records(path, fmt):
        if not isinstance(record, dict):
            raise DataError(f"{path}, {where}: expected an object with columns {list(columns)}")
        missing = [c for c in columns if c not in record or record[c] is None]
        if missing:
            raise DataError(f"{path}, {where}: missing column {missing[0]!r} (has {', '.join(map(str, record))})")
        texts = tuple(record[c] for c in section["text_columns"])
        for column, text in zip(section["text_columns"], texts):
            if not isinstance(text, str):
                raise DataError(f"{path}, {where}, column {column!r}: expected text, got {text!r}")
        examples.append(Example(texts, str(record[section["label_column"]]).strip(), where))
    return require_examples(examples, path)


def check_examples(examples: list[Example], task: TextTask, path: str, columns: tuple, known: tuple | None) -> None:
    """Non-empty texts, and labels that fit the task's kind: a number for regression, one of `known`
    (the task's labels, or those of the training file) for classification. `columns`: the file's
    text column(s) and label column, for the messages."""
    *text_columns, label_column = columns
    for example in examples:
        where = example.where
        for column, text in zip(text_columns, example.texts):
            if not text.strip():
                raise DataError(f"{path}, {where}: empty text in column {column!r}")
        if task.kind == REGRESSION:
            try:
                float(example.label)
            except ValueError:
                raise DataError(f"{path}, {where}, column {label_column!r}: label {example.label!r} is not a "
                                f"number, but {task.name} is a regression task") from None
        elif known is not None and example.label not in known:
            raise DataError(f"{path}, {where}, column {label_column!r}: label {example.label!r} is not one of the "
                            f"labels {list(known)} ({'the training file has' if task.labels is None else 'of ' + task.name})")


def sorted_labels(values) -> tuple:
    """The label list of a custom task: sorted as numbers when every label is one (2 before 10)."""
    values = set(values)
    try:
        return tuple(sorted(values, key=float))
    except ValueError:
        return tuple(sorted(values))


def task_labels(task: TextTask, train: list[Example]) -> tuple | None:
    if task.kind == REGRESSION:
        return None
    return task.labels if task.labels is not None else sorted_labels(e.label for e in train)


def write_prepared_tsv(path: str, task: TextTask, examples: list[Example], with_set: bool = False) -> None:
    header = [*task.columns, "label", *([VALIDATION_SET_COLUMN] if with_set else [])]
    clean = [[" ".join(text.split()) for text in e.texts] + [e.label] + ([e.validation_set] if with_set else [])
             for e in examples]
    write_text(path, "\n".join("\t".join(cells) for cells in [header, *clean]) + "\n")


def read_prepared_tsv(path: str) -> list[Example]:
    """A prepared task file (results/data/<task>/*.tsv): text column(s), label, maybe validation_set."""
    rows = tsv_rows(path)
    _, header = next(rows, (1, []))
    if "label" not in header or not header.index("label") in (1, 2):
        raise DataError(f"{path}: expected a header 'sentence, label' or 'sentence1, sentence2, label', got {header}")
    texts = header.index("label")
    with_set = VALIDATION_SET_COLUMN in header
    examples = []
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: expected {len(header)} tab-separated columns, got {len(row)}")
        examples.append(Example(tuple(row[:texts]), row[texts], f"line {line}", row[-1] if with_set else ""))
    return require_examples(examples, path)


def generated_examples(task: TextTask, generated: dict) -> dict[str, list[Example]]:
    """The default run's generated sentiment sentences, SST-2's only generated data (SQuAD has its own)."""
    if task.name != "sst2":
        raise DataError(f"finetune.{task.name}.source: 'generated' data exists for sst2 and squad only")
    from .synthetic_tasks import generate_sst2

    def examples(count: int, seed: int) -> list[Example]:
        return [Example((sentence,), str(label), f"generated row {row}")
                for row, (sentence, label) in enumerate(generate_sst2(count, seed), start=1)]

    return {"train": examples(generated["train_examples"], generated["seed"]),
            "": examples(generated["validation_examples"], generated["seed"] + 1)}


def prepare_text_task(task: TextTask, *, source: str, out_train: str, out_validation: str,
                      local_files: dict | None = None, hub_dir: str | None = None, hub_splits: dict | None = None,
                      section: dict | None = None, generated: dict | None = None) -> dict:
    """Read, check and write a GLUE or custom task: train and every validation set (MNLI: both)."""
    sets = task.validation_sets
    if source == "generated":
        made = generated_examples(task, generated)
        read = {key: (lambda rows=rows: rows) for key, rows in made.items()}
        files, columns = {key: f"finetune.{task.name}.generated" for key in made}, (*task.columns, "label")
    elif source == "custom":
        read = {"train": lambda: read_custom(local_files["train"], section, task),
                "": lambda: read_custom(local_files["validation"], section, task)}
        files, columns = {"train": local_files["train"], "": local_files["validation"]}, (*section["text_columns"],
                                                                                       section["label_column"])
    elif source == "local":
        files = {"train": local_files["train"],
                 **{name: local_files["validation" if i == 0 else f"validation_{name}"] for i, name in enumerate(sets)}}
        read = {key: (lambda path=path: read_glue_tsv(path, task)) for key, path in files.items()}
        columns = (*task.layout.text, task.layout.label)
    elif source == "hub":
        splits = {"train": hub_splits["train"],
                  **{name: (hub_splits.get("validation") if i == 0 and hub_splits.get("validation")
                            else task.layout.hub_validation[name]) for i, name in enumerate(sets)}}
        files = {key: f"{hub_dir} (split {split})" for key, split in splits.items()}
        read = {key: (lambda split=split: read_hub_task(hub_dir, split, task)) for key, split in splits.items()}
        columns = (*task.layout.hub_text, "label")
    else:
        raise DataError(f"finetune.{task.name}.source: unknown source {source!r}")
    train = read["train"]()
    check_examples(train, task, files["train"], columns, task.labels)
    labels = task_labels(task, train)
    validation = []
    for name in sets:
        rows = read[name]()
        check_examples(rows, task, files[name], columns, labels)
        validation += [e._replace(validation_set=name) for e in rows]
    write_prepared_tsv(out_train, task, train)
    write_prepared_tsv(out_validation, task, validation, with_set=len(sets) > 1)
    counts = {"train": len(train), "validation": len(validation), "labels": list(labels) if labels else None,
              **({f"validation_{name}": sum(e.validation_set == name for e in validation) for name in sets}
                 if len(sets) > 1 else {})}
    log.info("%s data: %s", task.name, counts)
    return counts


# ----------------------------------------------------------------------------- SQuAD


VERSION_KEY = "finetune.squad.version_2_with_negative"
V2_VERSION = "v2.0"  # the official v2.0 files' `version`; the prepared files carry it too


def squad_questions(squad: dict):
    """(article index, context, question) of every question of the official nested JSON."""
    for a_index, article in enumerate(squad["data"]):
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                yield a_index, paragraph.get("context"), qa


def version_problem(squad: dict, source: str, version_2: bool) -> str | None:
    """A v1.1 file given as v2.0 (no question says whether it is answerable) or a v2.0 file given
    as v1.1 (unanswerable questions, which v1.1 training and scoring cannot represent)."""
    qas = [qa for _, _, qa in squad_questions(squad)]
    if version_2 and qas and not any("is_impossible" in qa for qa in qas):
        return (f"{source}: no question has 'is_impossible' (version {squad.get('version')!r}): this is SQuAD "
                f"v1.1 data; set {VERSION_KEY}: false, or give a SQuAD v2.0 file")
    impossible = [qa.get("id", "?") for qa in qas if qa.get("is_impossible") is True]
    if not version_2 and impossible:
        return (f"{source}: {len(impossible)} unanswerable question(s) ('is_impossible': true, e.g. "
                f"{impossible[0]}): this is SQuAD v2.0 data; set {VERSION_KEY}: true")
    return None


def _check_answer_starts(answers, context: str, qid: str, source: str, key: str = "") -> None:
    for answer in answers:
        start, text = answer.get("answer_start"), answer.get("text", "")
        if not isinstance(start, int) or context[start : start + len(text)] != text:
            found = context[start : start + len(text)] if isinstance(start, int) else None
            raise DataError(f"{source}: question {qid}: {key}answer_start {start} points at {found!r}, "
                            f"not at the answer text {text!r}")


def _check_answerability(qa: dict, qid: str, source: str, version_2: bool) -> None:
    """v1.1: every question has answers. v2.0: `is_impossible` says whether it has any."""
    if not version_2:
        if not qa.get("answers"):
            raise DataError(f"{source}: question {qid} lacks a question text or answers")
        return
    impossible = qa.get("is_impossible")
    if not isinstance(impossible, bool):
        raise DataError(f"{source}: question {qid}: 'is_impossible' is {impossible!r}, expected true or false "
                        "(SQuAD v2.0 gives it for every question)")
    if impossible == bool(qa.get("answers")):
        raise DataError(f"{source}: question {qid}: 'is_impossible' is {str(impossible).lower()} but it has "
                        f"{len(qa.get('answers') or [])} answer(s); an unanswerable question has none")


def validate_squad(squad: dict, source: str, version_2: bool = False) -> int:
    """Check the official structure (v1.1, or v2.0 with `is_impossible` questions) and that every
    answer_start (plausible answers' too) points at its text; returns the number of questions."""
    if not isinstance(squad, dict) or not isinstance(squad.get("data"), list):
        raise DataError(f"{source}: not SQuAD JSON (expected an object with a 'data' list)")
    problem = version_problem(squad, source, version_2)
    if problem:
        raise DataError(problem)
    questions = 0
    first_article_of: dict[str, int] = {}  # predictions and scores are keyed by id: each must be one question's
    for a_index, context, qa in squad_questions(squad):
        if not isinstance(context, str):
            raise DataError(f"{source}: article {a_index} has a paragraph without a 'context' string")
        qid = qa.get("id", "?")
        if qid in first_article_of:
            raise DataError(f"{source}: question id {qid!r} is used twice (in article {first_article_of[qid]}, "
                            f"again in article {a_index}); predictions are scored by id, so one of the two would "
                            "never be scored: give every question its own id")
        first_article_of[qid] = a_index
        if not qa.get("question"):
            raise DataError(f"{source}: question {qid} lacks a question text or answers")
        _check_answerability(qa, qid, source, version_2)
        _check_answer_starts(qa.get("answers") or [], context, qid, source)
        if version_2:
            _check_answer_starts(qa.get("plausible_answers") or [], context, qid, source, "plausible_answers ")
        questions += 1
    if questions == 0:
        raise DataError(f"{source}: no questions (empty split)")
    return questions


def squad_is_v2(squad: dict) -> bool:
    """Whether a (prepared) SQuAD file is v2.0, by its `version` field."""
    return squad.get("version") == V2_VERSION


def read_squad_json(path: str, version_2: bool | None = False) -> dict:
    """An official SQuAD file, validated as v1.1 or v2.0 (`version_2` None: as its `version` field says)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SQuAD file not found")
    squad = read_json(path, "SQuAD file", fix="the file is truncated or damaged: download or prepare it again")
    if version_2 is None:
        version_2 = isinstance(squad, dict) and squad_is_v2(squad)
    validate_squad(squad, str(path), version_2)
    return squad


def as_version(squad: dict, version_2: bool) -> dict:
    """The validated data labelled with its version; v1.1 keeps no v2.0-only keys."""
    if version_2:
        return {**squad, "version": V2_VERSION}
    v2_only = ("is_impossible", "plausible_answers")
    return {"version": "1.1", "data": [
        {**article, "paragraphs": [
            {**paragraph, "qas": [{k: v for k, v in qa.items() if k not in v2_only} for qa in paragraph["qas"]]}
            for paragraph in article["paragraphs"]]}
        for article in squad["data"]]}


def split_articles(squad: dict, train_articles: int, source: str) -> tuple[dict, dict]:
    """Split one SQuAD file by article (no context shared between train and evaluation)."""
    articles = squad["data"]
    if not 0 < train_articles < len(articles):
        raise DataError(f"{source}: has {len(articles)} articles; train_articles must be between 1 and "
                        f"{len(articles) - 1}, got {train_articles}")
    version = squad.get("version", "1.1")
    return ({"version": version, "data": articles[:train_articles]},
            {"version": version, "data": articles[train_articles:]})


def hub_squad_to_official(dataset_dir: str, split: str, version_2: bool = False) -> dict:
    """Rows of the Hub `squad` or `squad_v2` dataset (one per question) back to the official nested
    JSON; a row with no answer is an unanswerable (`is_impossible`) question."""
    articles: dict[str, dict[str, list]] = {}
    for row in hub_split(dataset_dir, split):
        paragraphs = articles.setdefault(row["title"], {})
        paragraphs.setdefault(row["context"], []).append({
            "id": row["id"], "question": row["question"],
            "answers": [{"text": t, "answer_start": s}
                        for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])],
            "is_impossible": not row["answers"]["text"],
        })
    squad = {"version": V2_VERSION, "data": [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]}
    if not any(qa["is_impossible"] for _, _, qa in squad_questions(squad)):
        squad = as_version(squad, False)  # every question answered: the `squad` (v1.1) dataset's layout
    validate_squad(squad, f"{dataset_dir} (split {split})", version_2)
    return as_version(squad, version_2)


def squad_examples(squad: dict) -> list[dict]:
    """Flat rows (id, question, context, answers) as the preprocessing expects."""
    return [
        {"id": qa["id"], "question": qa["question"], "context": paragraph["context"],
         "answers": {"text": [a["text"] for a in qa["answers"]],
                     "answer_start": [a["answer_start"] for a in qa["answers"]]}}
        for article in squad["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    ]


# ----------------------------------------------------------------------------- the stages


def prepare_squad(*, source: str, out_train: str, out_validation: str, generated: dict | None = None,
                  local_files: dict | None = None, hub_dir: str | None = None, hub_splits: dict | None = None,
                  version_2_with_negative: bool = False) -> dict:
    """Official v1.1 JSON, or v2.0 (`version` "v2.0", `is_impossible` on every question) with
    `version_2_with_negative`; a file of the other version is refused."""
    v2 = version_2_with_negative
    if source == "generated":
        from .synthetic_tasks import generate_squad

        train = generate_squad(generated["train_articles"], generated["seed"], version_2=v2)
        # Validation facts are new: EM/F1 measure reading the context, not recalling training answers.
        validation = generate_squad(generated["validation_articles"], generated["seed"] + 1, world_seed=None,
                                    version_2=v2)
    elif source == "local":
        train = read_squad_json(local_files["train"], v2)
        if local_files.get("validation"):
            validation = read_squad_json(local_files["validation"], v2)
        else:
            train, validation = split_articles(train, local_files["train_articles"], local_files["train"])
    elif source == "hub":
        train = hub_squad_to_official(hub_dir, hub_splits["train"], v2)
        validation = hub_squad_to_official(hub_dir, hub_splits["validation"], v2)
    else:
        raise DataError(f"finetune.squad.source: unknown source {source!r}")
    train, validation = as_version(train, v2), as_version(validation, v2)
    counts = {"train": validate_squad(train, "train split", v2),
              "validation": validate_squad(validation, "validation split", v2),
              "train_articles": len(train["data"]), "validation_articles": len(validation["data"])}
    if v2:
        counts["validation_unanswerable"] = sum(qa["is_impossible"] for _, _, qa in squad_questions(validation))
    write_json(out_train, train)
    write_json(out_validation, validation)
    log.info("squad data: %s", counts)
    return counts


def download_hub_dataset(name: str, config: str | None, out_dir: str, revision: str | None = None) -> None:
    """Save a Hub dataset to disk (local rule; the only fine-tuning data step with network)."""
    import datasets

    log.info("downloading dataset %s (%s)", name, config)
    datasets.load_dataset(name, config, revision=revision).save_to_disk(out_dir)
