"""Model card: Hub metadata parses back to the inputs' values; the body carries the tables."""

from __future__ import annotations

import pytest
from support.report import PERPLEXITY_ROWS, SQUAD, SST2, make_stage_outputs, summary, write_card
from huggingface_hub import ModelCard

from bertflow.errors import DataError
from bertflow.io import write_json


@pytest.fixture(scope="module")
def stage_outputs(tmp_path_factory):
    return make_stage_outputs(tmp_path_factory.mktemp("card"))


def results_by_metric(card) -> dict[tuple[str, str], float]:
    return {(r.task_type, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_metadata_parses_back(stage_outputs, tmp_path):
    write_card(stage_outputs, str(tmp_path / "README.md"), settings={"datasets": ["wikitext"]})
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data
    assert data.language == ["en"] and data.license == "apache-2.0" and data.datasets == ["wikitext"]
    assert data.library_name == "transformers" and data.pipeline_tag == "fill-mask"
    assert data.tags == ["bert", "fill-mask", "bertflow"] and data.model_name == "tiny-bert"
    assert results_by_metric(card) == {
        ("fill-mask", "perplexity"): PERPLEXITY_ROWS[-1]["perplexity"],
        ("text-classification", "accuracy"): SST2["accuracy"],  # SST-2's official metric only
        ("question-answering", "exact_match"): SQUAD["exact_match"], ("question-answering", "f1"): SQUAD["f1"],
    }
    # Generated data is named as such, never as the real benchmark.
    assert {r.dataset_type for r in data.eval_results} == {"generated"}


def test_body_has_architecture_training_and_perplexity_tables(stage_outputs, tmp_path):
    card = write_card(stage_outputs, str(tmp_path / "README.md"))
    text = card.text
    assert "| layers | d_model | d_ff | heads | head dim |" in text
    assert "| 1 | 32 | 64 | 2 | 16 |" in text  # the tiny model of support.finetune
    assert "| tokens seen | 81,920 |" in text and "| epochs / steps | 2 / 80 |" in text
    assert "| hardware | CPU (1 threads, 1 process(es)) |" in text and "| wall time | 24 s" in text
    for row in PERPLEXITY_ROWS:
        assert f"| {row['epoch']} | {row['step']} |" in text and f"{row['perplexity']:.2f}" in text
    assert "81.25 ± 0.50" in text and "## Intended use\n\nTeaching and research." in text
    assert "## Limitations\n\nSmall corpus; weak results." in text
    assert 'pipeline("fill-mask", model="alice/tiny-bert")' in text and "France" not in text


def test_without_finetuning_only_perplexity(stage_outputs, tmp_path):
    card = write_card(stage_outputs, str(tmp_path / "README.md"), tasks=(), settings={"model_name": "my-bert"})
    assert list(results_by_metric(card)) == [("fill-mask", "perplexity")]
    assert "Fine-tuning results" not in card.text and card.data.model_name == "my-bert"


def test_hub_sources_are_named(stage_outputs, tmp_path):
    card = write_card(stage_outputs, str(tmp_path / "README.md"),
                      sources={"sst2": {"source": "hub"}, "squad": {"source": "local"}},
                      corpus={"source": "hub", "hub": {"name": "wikitext", "config": "wikitext-103-raw-v1"}})
    by_task = {r.task_type: r for r in card.data.eval_results}
    assert (by_task["fill-mask"].dataset_type, by_task["fill-mask"].dataset_config) == ("wikitext", "wikitext-103-raw-v1")
    assert (by_task["text-classification"].dataset_type, by_task["text-classification"].dataset_config) == ("glue", "sst2")
    assert by_task["question-answering"].dataset_type == "local"


def test_every_tasks_official_metrics_go_into_the_model_index(stage_outputs, tmp_path):
    """GLUE tasks as glue/<task>, SQuAD v2.0 as squad_v2, a custom task by its own name."""
    tasks = {"cola": ("CoLA", True, {"matthews_correlation": 21.5}),
             "stsb": ("STS-B", True, {"pearson": 80.25, "spearmanr": 79.75}),
             "squad": ("SQuAD v2.0", False, {"exact_match": 60.5, "f1": 64.25}),
             "reviews": ("reviews", False, {"accuracy": 70.0})}
    paths = dict(stage_outputs)
    for task, (label, glue, mean) in tasks.items():
        paths[task] = str(tmp_path / f"{task}.json")
        write_json(paths[task], {**summary(task, "pretrained", {**mean, "finetune_wall_time_s": 3.0}),
                                 "task_metrics": list(mean), "task_label": label, "glue": glue})
    sources = {"cola": {"source": "hub"}, "stsb": {"source": "hub"}, "squad": {"source": "hub"},
               "reviews": {"source": "local"}}
    card = write_card(paths, str(tmp_path / "README.md"), tasks=tuple(tasks), sources=sources)
    card = ModelCard.load(tmp_path / "README.md")
    got = [(r.task_type, r.dataset_type, r.dataset_config, r.metric_type, r.metric_value)
           for r in card.data.eval_results[1:]]
    assert got == [("text-classification", "glue", "cola", "matthews_correlation", 21.5),
                   ("text-classification", "glue", "stsb", "pearson", 80.25),
                   ("text-classification", "glue", "stsb", "spearmanr", 79.75),
                   ("question-answering", "squad_v2", None, "exact_match", 60.5),
                   ("question-answering", "squad_v2", None, "f1", 64.25),
                   ("text-classification", "local", None, "accuracy", 70.0)]
    assert card.data.eval_results[-1].dataset_name == "reviews (local files)"
    assert "### STS-B (data: hub, seeds: [1, 2])" in card.text and "| pearson | spearmanr |" in card.text


def test_local_files_declared_as_a_hub_dataset_are_named_by_its_id(stage_outputs, tmp_path):
    declared = {"sst2": {"source": "local", "hub": {"name": "glue", "config": "sst2"}},
                "squad": {"source": "local", "hub": {"name": "squad", "config": None}}}
    card = write_card(stage_outputs, str(tmp_path / "README.md"), sources=declared,
                      corpus={"source": "local", "hub": {"name": "wikitext", "config": "wikitext-2-raw-v1"}})
    by_task = {r.task_type: r for r in card.data.eval_results}
    assert (by_task["text-classification"].dataset_type, by_task["text-classification"].dataset_config) == (
        "glue", "sst2")
    assert by_task["question-answering"].dataset_type == "squad"
    assert by_task["fill-mask"].dataset_config == "wikitext-2-raw-v1"
    assert card.data.datasets == ["wikitext", "glue", "squad"]
    assert "(data: glue/sst2, local copy," in card.text and "| corpus | wikitext (" in card.text


def test_fill_mask_example_is_a_held_out_sentence_with_a_known_word_masked(stage_outputs, tmp_path):
    from transformers import AutoTokenizer

    from bertflow.card import fill_mask_example

    example = fill_mask_example(stage_outputs["validation_text"], stage_outputs["model"])
    assert example.count("[MASK]") == 1
    tokenizer = AutoTokenizer.from_pretrained(stage_outputs["model"])
    words = example.split()
    source = next(line for line in open(stage_outputs["validation_text"], encoding="utf-8")
                  if len(line.split()) >= len(words)
                  and all(a == b or b == "[MASK]" for a, b in zip(line.split(), words)))
    masked = source.split()[words.index("[MASK]")]
    assert tokenizer(masked, add_special_tokens=False)["input_ids"] != [tokenizer.unk_token_id]
    assert len(tokenizer(masked, add_special_tokens=False)["input_ids"]) == 1
    card = write_card(stage_outputs, str(tmp_path / "README.md"))
    assert f"fill({example!r})" in card.text


def test_word_encoder_without_transformers_matches_autotokenizer(stage_outputs):
    """The card reads the tokenizer with `tokenizers` alone: same ids, mask and unk as AutoTokenizer."""
    from transformers import AutoTokenizer

    from bertflow.card import _word_encoder

    encode, mask, unk = _word_encoder(stage_outputs["model"])
    tokenizer = AutoTokenizer.from_pretrained(stage_outputs["model"])
    assert (mask, unk) == (tokenizer.mask_token, tokenizer.unk_token_id)
    words = open(stage_outputs["validation_text"], encoding="utf-8").read().split()[:2000] + ["Zebra", "naïve", "x"]
    assert [encode(w) for w in words] == [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]


def test_question_answering_snippet_runs(stage_outputs, tmp_path):
    """The card's QA code, run as written against a (random) SQuAD-head model of the same shape."""
    import re

    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    qa_dir = tmp_path / "qa"
    AutoModelForQuestionAnswering.from_pretrained(stage_outputs["model"]).save_pretrained(qa_dir)
    AutoTokenizer.from_pretrained(stage_outputs["model"]).save_pretrained(qa_dir)
    card = write_card(stage_outputs, str(tmp_path / "README.md"))
    blocks = re.findall(r"```python\n(.*?)```", card.text, flags=re.S)
    snippet = next(b for b in blocks if "AutoModelForQuestionAnswering" in b)
    assert "pipeline(" not in snippet
    exec(snippet.replace("path/to/squad-model", str(qa_dir)), {})
    without_squad = write_card(stage_outputs, str(tmp_path / "R2.md"), tasks=("sst2",))
    assert "AutoModelForQuestionAnswering" not in without_squad.text


def test_bad_perplexity_csv_is_a_clear_error(stage_outputs, tmp_path):
    bad = tmp_path / "perplexity.csv"
    bad.write_text("epoch,loss\n")
    with pytest.raises(DataError, match="perplexity.csv: expected a CSV"):
        write_card({**stage_outputs, "perplexity": str(bad)}, str(tmp_path / "README.md"))


def test_perplexity_table_keeps_epoch_and_end_rows_only():
    from bertflow.card import perplexity_table

    base = {"train_loss": 5.0, "eval_loss": 4.0, "perplexity": 54.6, "tokens_per_s": 100, "elapsed_s": 1}
    rows = [{**base, "epoch": 0.5, "step": 5, "kind": "step"}, {**base, "epoch": 1, "step": 10, "kind": "epoch"},
            {**base, "epoch": 1.3, "step": 13, "kind": "end"}]
    text = "\n".join(perplexity_table(rows))
    assert "| 1 | 10 |" in text and "| 1.3 | 13 |" in text and "| 0.5 | 5 |" not in text
