"""Fine-tuning data: SST-2 and SQuAD v1.1 from generated, local or Hub-on-disk sources, validated.

Everything is normalised to the official formats in results/data/<task>/: SST-2 as GLUE TSV
(`sentence<TAB>label`, header), SQuAD as the official v1.1 JSON. Problems are reported with the
file and row (or article/question id) before any training starts.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from pathlib import Path

from .errors import DataError
from .io import read_json, text_lines, write_json, write_text

log = logging.getLogger(__name__)

# The prepared files of each task under results/data/<task>/ (train, validation), and the keys of a
# `finetune.<task>` section that choose the data rather than the training (rules/common.smk and the
# fine-tuning sweep read both from here).
TASK_DATA_FILES = {"sst2": ("train.tsv", "validation.tsv"), "squad": ("train.json", "validation.json")}
DATA_SOURCE_KEYS = ("source", "generated", "local", "hub")


# ----------------------------------------------------------------------------- SST-2


def read_sst2_tsv(path: str) -> list[tuple[str, int]]:
    """GLUE-format TSV with a header holding `sentence` and `label` columns; labels 0/1."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SST-2 file not found")
    with contextlib.closing(text_lines(path, "SST-2 file")) as handle:
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


def validate_squad(squad: dict, source: str) -> int:
    """Check the official structure and that every answer_start points at its text."""
    if not isinstance(squad, dict) or not isinstance(squad.get("data"), list):
        raise DataError(f"{source}: not SQuAD JSON (expected an object with a 'data' list)")
    questions = 0
    first_article_of: dict[str, int] = {}  # predictions and scores are keyed by id: each must be one question's
    for a_index, article in enumerate(squad["data"]):
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise DataError(f"{source}: article {a_index} has a paragraph without a 'context' string")
            for qa in paragraph.get("qas", []):
                qid = qa.get("id", "?")
                if qid in first_article_of:
                    raise DataError(f"{source}: question id {qid!r} is used twice (in article "
                                    f"{first_article_of[qid]}, again in article {a_index}); predictions are scored "
                                    "by id, so one of the two would never be scored: give every question its own id")
                first_article_of[qid] = a_index
                if not qa.get("question") or not qa.get("answers"):
                    raise DataError(f"{source}: question {qid} lacks a question text or answers")
                for answer in qa["answers"]:
                    start, text = answer.get("answer_start"), answer.get("text", "")
                    if not isinstance(start, int) or context[start : start + len(text)] != text:
                        found = context[start : start + len(text)] if isinstance(start, int) else None
                        raise DataError(
                            f"{source}: question {qid}: answer_start {start} points at {found!r}, "
                            f"not at the answer text {text!r}"
                        )
                questions += 1
    if questions == 0:
        raise DataError(f"{source}: no questions (empty split)")
    return questions


def read_squad_json(path: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SQuAD file not found")
    squad = read_json(path, "SQuAD file", fix="the file is truncated or damaged: download or prepare it again")
    validate_squad(squad, str(path))
    return squad


def split_articles(squad: dict, train_articles: int, source: str) -> tuple[dict, dict]:
    """Split one SQuAD file by article (no context shared between train and evaluation)."""
    articles = squad["data"]
    if not 0 < train_articles < len(articles):
        raise DataError(f"{source}: has {len(articles)} articles; train_articles must be between 1 and "
                        f"{len(articles) - 1}, got {train_articles}")
    version = squad.get("version", "1.1")
    return ({"version": version, "data": articles[:train_articles]},
            {"version": version, "data": articles[train_articles:]})


def hub_squad_to_official(dataset_dir: str, split: str) -> dict:
    """Rows of the Hub `squad` dataset (one per question) back to the official nested JSON."""
    articles: dict[str, dict[str, list]] = {}
    for row in hub_split(dataset_dir, split):
        paragraphs = articles.setdefault(row["title"], {})
        paragraphs.setdefault(row["context"], []).append({
            "id": row["id"], "question": row["question"],
            "answers": [{"text": t, "answer_start": s}
                        for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])],
        })
    squad = {"version": "1.1", "data": [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]}
    validate_squad(squad, f"{dataset_dir} (split {split})")
    return squad


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
                  local_files: dict | None = None, hub_dir: str | None = None, hub_splits: dict | None = None) -> dict:
    if source == "generated":
        from .synthetic_tasks import generate_squad

        train = generate_squad(generated["train_articles"], generated["seed"])
        # Validation facts are new: EM/F1 measure reading the context, not recalling training answers.
        validation = generate_squad(generated["validation_articles"], generated["seed"] + 1, world_seed=None)
    elif source == "local":
        train = read_squad_json(local_files["train"])
        if local_files.get("validation"):
            validation = read_squad_json(local_files["validation"])
        else:
            train, validation = split_articles(train, local_files["train_articles"], local_files["train"])
    elif source == "hub":
        train = hub_squad_to_official(hub_dir, hub_splits["train"])
        validation = hub_squad_to_official(hub_dir, hub_splits["validation"])
    else:
        raise DataError(f"finetune.squad.source: unknown source {source!r}")
    counts = {"train": validate_squad(train, "train split"), "validation": validate_squad(validation, "validation split"),
              "train_articles": len(train["data"]), "validation_articles": len(validation["data"])}
    write_json(out_train, train)
    write_json(out_validation, validation)
    log.info("squad data: %s", counts)
    return counts


def download_hub_dataset(name: str, config: str | None, out_dir: str, revision: str | None = None) -> None:
    """Save a Hub dataset to disk (local rule; the only fine-tuning data step with network)."""
    import datasets

    log.info("downloading dataset %s (%s)", name, config)
    datasets.load_dataset(name, config, revision=revision).save_to_disk(out_dir)
