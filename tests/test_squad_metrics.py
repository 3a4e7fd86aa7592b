"""Edge cases of the official SQuAD v1.1 metric (evaluate-v1.1.py), pinned on hand-made answers."""

from __future__ import annotations

import pytest

from bertflow.squad_metrics import exact_match, f1, normalize_answer, squad_scores


@pytest.mark.parametrize("raw, normalized", [
    ("THE Beatles", "beatles"),                 # lowercased before the articles are removed
    ("An answer", "answer"),                    # 'an' inside 'answer' stays
    ("rock-n-roll", "rocknroll"),               # punctuation removed, not replaced by spaces
    ("“curly quotes”", "“curly quotes”"),       # only ASCII string.punctuation is removed
    ("a\tb\n  c", "b c"),                        # 'a' is an article; any whitespace collapses
    ("the the", ""),
])
def test_normalization_edge_cases(raw, normalized):
    assert normalize_answer(raw) == normalized


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
