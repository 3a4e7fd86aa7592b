"""The SQuAD v1.1 metric (evaluate-v1.1.py): normalisation, EM, F1 and scores, pinned on hand-made answers."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bertflow.squad_metrics import exact_match, f1, normalize_answer, squad_scores


@pytest.mark.parametrize("raw, normalized", [
    ("THE Beatles", "beatles"),                 # lowercased before the articles are removed
    ("An answer", "answer"),                    # 'an' inside 'answer' stays
    ("rock-n-roll", "rocknroll"),               # punctuation removed, not replaced by spaces
    ("“curly quotes”", "“curly quotes”"),       # only ASCII string.punctuation is removed
    ("a\tb\n  c", "b c"),                        # 'a' is an article; any whitespace collapses
    ("the the", ""),
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple, a day ", "apple day"),
    ("Theatre of the Absurd", "theatre of absurd"),  # 'the' only as a whole word
    ("U.S.A.", "usa"),
    ("", ""),
])
def test_normalization_edge_cases(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_and_f1_on_hand_made_cases():
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match("Broncos", "Denver Broncos") == 0.0
    # pred {denver, broncos, won} vs gold {denver, broncos}: P 2/3, R 1 -> F1 0.8
    assert f1("Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)
    assert f1("Carolina", "Denver Broncos") == 0.0
    assert f1("", "Denver") == 0.0


def test_scores_take_the_best_gold_answer_and_count_missing_predictions():
    answers = {"q1": ["Denver Broncos", "Broncos"], "q2": ["paris"], "q3": ["blue"]}
    scores = squad_scores(answers, {"q1": "broncos", "q2": "in paris"})
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert scores["questions"] == 3 and scores["predicted"] == 2


def test_answers_that_normalize_to_nothing_match_exactly_but_score_zero_f1():
    # The v1.1 script's quirk (v2.0 changed it): EM compares '' == '', F1 has no common token.
    assert exact_match("the", "a") == 1.0
    assert f1("the", "a") == 0.0


def test_f1_counts_repeated_tokens_once_per_occurrence():
    # pred {cat: 2}, gold {cat: 1, sat: 1}: 1 common token, P 1/2, R 1/2 -> F1 1/2
    assert f1("cat cat", "the cat sat") == pytest.approx(0.5)
    assert f1("Cat, sat!", "the cat sat") == 1.0


def test_scores_are_percentages_over_all_gold_questions():
    gold = {"a": ["Paris"], "b": ["in 1998", "1998"], "c": ["blue whale"], "d": ["x"]}
    predictions = {"a": "paris.", "b": "1998", "c": "whale", "unknown": "ignored"}
    scores = squad_scores(gold, predictions)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 4)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3 + 0) / 4)
    assert (scores["questions"], scores["predicted"]) == (4, 3)
    assert squad_scores({}, {}) == {"exact_match": 0.0, "f1": 0.0, "questions": 0, "predicted": 0}


# ---- The evaluate modules (bertflow/metrics) against independent references


def official_v11_scores(dataset: list[dict], predictions: dict[str, str]) -> dict:
    """Restates evaluate-v1.1.py's evaluate(dataset, predictions) over the official JSON layout:
    every question counts in the total; an unanswered one adds nothing (score 0)."""
    total = em = f1_sum = 0.0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                truths = [answer["text"] for answer in qa["answers"]]
                em += max(exact_match(predictions[qa["id"]], truth) for truth in truths)
                f1_sum += max(f1(predictions[qa["id"]], truth) for truth in truths)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1_sum / total}


def gold_answers(dataset: list[dict]) -> dict[str, list[str]]:
    return {qa["id"]: [a["text"] for a in qa["answers"]]
            for article in dataset for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


def test_unanswered_question_scores_zero_even_when_its_gold_answer_normalizes_to_nothing():
    # Scoring a missing prediction as "" would give EM 1 here ("" == normalize(".")).
    scores = squad_scores({"q": ["."], "r": ["the cat"]}, {"r": "cat"})
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["predicted"] == 1
    # An explicit empty prediction is still an answer, and matches as in the official script.
    assert squad_scores({"q": ["."]}, {"q": ""})["exact_match"] == 100.0


def test_squad_module_equals_the_official_script_on_real_dev_questions():
    path = "/work/shared/data/squad/squad-v1.1-dev-part1.json"
    try:
        with open(path) as f:
            dataset = json.load(f)["data"][:3]
    except FileNotFoundError:
        pytest.skip(f"{path} absent (the shared SQuAD dev file)")
    gold = gold_answers(dataset)
    rng = random.Random(0)
    predictions = {}
    for qid, answers in gold.items():  # a mix of exact, partial, wrong and missing predictions
        kind = rng.randrange(4)
        if kind == 0:
            predictions[qid] = rng.choice(answers)
        elif kind == 1:
            predictions[qid] = " ".join(rng.choice(answers).split()[:1] + ["extra", "words"])
        elif kind == 2:
            predictions[qid] = "."
    official = official_v11_scores(dataset, predictions)
    scores = squad_scores(gold, predictions)
    assert scores["exact_match"] == pytest.approx(official["exact_match"])
    assert scores["f1"] == pytest.approx(official["f1"])
    assert 0 < scores["exact_match"] < 100 and scores["predicted"] < scores["questions"]


def test_sst2_module_equals_sklearn():
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    from bertflow.metrics import load

    rng = np.random.default_rng(0)
    gold, predicted = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    scores = load("sst2").compute(predictions=predicted, references=gold)
    precision, recall, f1_score, _ = precision_recall_fscore_support(gold, predicted, average="binary")
    assert scores["accuracy"] == pytest.approx(100 * accuracy_score(gold, predicted))
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(
        (100 * precision, 100 * recall, 100 * f1_score))
    assert scores["confusion_matrix"] == confusion_matrix(gold, predicted).tolist()
    assert scores["examples"] == 200
    # No positive prediction: precision is undefined and reported as 0, not an error.
    assert load("sst2").compute(predictions=[0, 0], references=[1, 0])["precision"] == 0.0
