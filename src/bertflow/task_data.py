"""Fine-tuning data: SST-2 and SQuAD v1.1 / v2.0 from generated, local or Hub-on-disk sources, validated.

Everything is normalised to the official formats in results/data/<task>/: SST-2 as GLUE TSV
(`sentence<TAB>label`, header), SQuAD as the official v1.1 or v2.0 JSON. Problems are reported with the
file and row (or article/question id) before any training starts.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from .errors import DataError
from .io import write_json, write_text

log = logging.getLogger(__name__)

# The prepared files of each task under results/data/<task>/ (train, validation), and the keys of a
# `finetune.<task>` section that choose the data rather than the training (rules/common.smk and the
# fine-tuning sweep read both from here).
TASK_DATA_FILES = {"sst2": ("train.tsv", "validation.tsv"), "squad": ("train.json", "validation.json")}
DATA_SOURCE_KEYS = ("source", "generated", "local", "hub", "version_2_with_negative")


# ----------------------------------------------------------------------------- SST-2


def read_sst2_tsv(path: str) -> list[tuple[str, int]]:
    """GLUE-format TSV with a header holding `sentence` and `label` columns; labels 0/1."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SST-2 file not found")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or not {"sentence", "label"} <= set(header):
            raise DataError(f"{path}: expected a header with 'sentence' and 'label' columns, got {header}")
        sentence_col, label_col = header.index("sentence"), header.index("label")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(header):  # a tab inside a sentence shifts the label column
                raise DataError(f"{path}, line {line_no}: expected {len(header)} tab-separated columns, got "
                                f"{len(row)} (header: {', '.join(header)}); a tab inside the sentence?")
            label = row[label_col].strip()
            if label not in ("0", "1"):
                raise DataError(f"{path}, line {line_no}: label {label!r} is not 0 or 1")
            rows.append((row[sentence_col], int(label)))
    return require_examples(rows, str(path))


def require_examples(rows: list, source: str) -> list:
    if not rows:
        raise DataError(f"{source}: no examples (empty split)")
    return rows


def write_sst2_tsv(path: str, rows: list[tuple[str, int]]) -> None:
    lines = ["sentence\tlabel"] + [f"{sentence.replace(chr(9), ' ')}\t{label}" for sentence, label in rows]
    write_text(path, "\n".join(lines) + "\n")


def read_hub_sst2(dataset_dir: str, split: str) -> list[tuple[str, int]]:
    data = hub_split(dataset_dir, split)
    source = f"{dataset_dir} (split {split})"
    missing = {"sentence", "label"} - set(data.column_names)
    if missing:
        raise DataError(f"{source}: missing column(s) {sorted(missing)}; expected the glue/sst2 layout")
    rows = []
    for index, row in enumerate(data):
        if row["label"] not in (0, 1):
            raise DataError(f"{source}, row {index}: label {row['label']!r} is not 0 or 1 "
                            "(the GLUE test split has no labels; evaluate on validation)")
        rows.append((row["sentence"], int(row["label"])))
    return require_examples(rows, source)


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
    for a_index, context, qa in squad_questions(squad):
        if not isinstance(context, str):
            raise DataError(f"{source}: article {a_index} has a paragraph without a 'context' string")
        qid = qa.get("id", "?")
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
    try:
        squad = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
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


def prepare_sst2(*, source: str, out_train: str, out_validation: str, generated: dict | None = None,
                 local_files: dict | None = None, hub_dir: str | None = None, hub_splits: dict | None = None) -> dict:
    if source == "generated":
        from .synthetic_tasks import generate_sst2

        train = generate_sst2(generated["train_examples"], generated["seed"])
        validation = generate_sst2(generated["validation_examples"], generated["seed"] + 1)
    elif source == "local":
        train, validation = read_sst2_tsv(local_files["train"]), read_sst2_tsv(local_files["validation"])
    elif source == "hub":
        train = read_hub_sst2(hub_dir, hub_splits["train"])
        validation = read_hub_sst2(hub_dir, hub_splits["validation"])
    else:
        raise DataError(f"finetune.sst2.source: unknown source {source!r}")
    write_sst2_tsv(out_train, train)
    write_sst2_tsv(out_validation, validation)
    counts = {"train": len(train), "validation": len(validation),
              "validation_positive_share": sum(label for _, label in validation) / len(validation)}
    log.info("sst2 data: %s", counts)
    return counts


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
