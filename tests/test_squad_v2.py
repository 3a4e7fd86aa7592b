"""SQuAD v2.0: the official v2 metric against a restatement of evaluate-v2.0.py, the v2 data checks
(and the version mix-ups), null-answer training labels and decoding, and a run through the workflow."""

from __future__ import annotations

import collections
import json
import random
import re
import string

import numpy as np
import pytest
import yaml

from bertflow import checks, task_data
from bertflow.errors import DataError
from bertflow.qa import cls_positions, decode_answers_v2, train_features
from bertflow.squad_metrics import squad_v2_scores
from bertflow.synthetic_tasks import UNANSWERABLE_PER_ARTICLE, generate_squad

from support.finetune import make_tiny_model
from support.workflow import TINY_CONFIG, snakemake

# ----------------------------------------------------------------------------- evaluate-v2.0.py, restated


def official_normalize(s):
    def remove_articles(text):
        return re.compile(r"\b(a|an|the)\b", re.UNICODE).sub(" ", text)

    def remove_punc(text):
        return "".join(ch for ch in text if ch not in set(string.punctuation))

    return " ".join(remove_articles(remove_punc(s.lower())).split())


def official_tokens(s):
    return official_normalize(s).split() if s else []


def official_exact(a_gold, a_pred):
    return int(official_normalize(a_gold) == official_normalize(a_pred))


def official_f1(a_gold, a_pred):
    gold_toks, pred_toks = official_tokens(a_gold), official_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def official_v2_eval(dataset: list[dict], preds: dict[str, str], na_probs: dict[str, float], na_prob_thresh: float):
    """evaluate-v2.0.py's main() with --na-prob-file and --na-prob-thresh, on the official layout."""
    qid_to_has_ans = {qa["id"]: bool(qa["answers"]) for article in dataset for p in article["paragraphs"]
                      for qa in p["qas"]}
    exact_raw, f1_raw = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                gold = [a["text"] for a in qa["answers"] if official_normalize(a["text"])] or [""]
                exact_raw[qa["id"]] = max(official_exact(a, preds[qa["id"]]) for a in gold)
                f1_raw[qa["id"]] = max(official_f1(a, preds[qa["id"]]) for a in gold)

    def apply_threshold(scores):
        return {qid: float(not qid_to_has_ans[qid]) if na_probs[qid] > na_prob_thresh else s
                for qid, s in scores.items()}

    def make_eval_dict(exact, f1, qids=None):
        qids = list(exact) if qids is None else qids
        return {"exact": 100.0 * sum(exact[k] for k in qids) / len(qids),
                "f1": 100.0 * sum(f1[k] for k in qids) / len(qids), "total": len(qids)}

    def find_best_thresh(scores):
        num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
        cur_score = best_score = num_no_ans
        best_thresh = 0.0
        for qid in sorted(na_probs, key=lambda k: na_probs[k]):
            if qid_to_has_ans[qid]:
                diff = scores[qid]
            else:
                diff = -1 if preds[qid] else 0
            cur_score += diff
            if cur_score > best_score:
                best_score, best_thresh = cur_score, na_probs[qid]
        return 100.0 * best_score / len(scores), best_thresh

    exact, f1 = apply_threshold(exact_raw), apply_threshold(f1_raw)
    out = make_eval_dict(exact, f1)
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in qid_to_has_ans.items() if v == wanted]
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in make_eval_dict(exact, f1, qids).items()})
    out["best_exact"], out["best_exact_thresh"] = find_best_thresh(exact_raw)
    out["best_f1"], out["best_f1_thresh"] = find_best_thresh(f1_raw)
    return out


def gold_of(dataset: list[dict]) -> dict[str, list[str]]:
    return {qa["id"]: [a["text"] for a in qa["answers"]]
            for article in dataset for p in article["paragraphs"] for qa in p["qas"]}


def random_predictions(dataset: list[dict], seed: int) -> tuple[dict[str, str], dict[str, float]]:
    """Exact, partial, plausible, empty and wrong answers, with random null score diffs."""
    rng = random.Random(seed)
    spans, diffs = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                candidates = [a["text"] for a in qa["answers"] or qa.get("plausible_answers", [])] or ["x"]
                kind = rng.randrange(5)
                spans[qa["id"]] = [rng.choice(candidates), f"the {rng.choice(candidates)} too", "",
                                   "Nowhere!", rng.choice(candidates).upper()][kind]
                diffs[qa["id"]] = rng.gauss(0.0, 2.0)
    return spans, diffs


@pytest.mark.parametrize("seed, threshold", [(0, 0.0), (1, 1.5), (2, -0.7)])
def test_v2_metric_equals_the_official_script_on_a_generated_v2_set(seed, threshold):
    dataset = generate_squad(8, seed=seed, world_seed=None, version_2=True)["data"]
    # Answers that normalise to nothing: evaluate-v2.0.py drops them from the gold list.
    dataset[0]["paragraphs"][0]["qas"][0]["answers"].append({"text": "the", "answer_start": 0})
    spans, diffs = random_predictions(dataset, seed)
    official = official_v2_eval(dataset, spans, diffs, threshold)
    scores = squad_v2_scores(gold_of(dataset), spans, diffs, threshold)
    assert scores["exact_match"] == pytest.approx(official.pop("exact"))
    assert scores["total"] == official.pop("total") == 8 * (6 + UNANSWERABLE_PER_ARTICLE)
    assert scores["HasAns_total"] == 8 * 6 and scores["NoAns_total"] == 8 * UNANSWERABLE_PER_ARTICLE
    for key, value in official.items():
        assert scores[key] == pytest.approx(value), key
    assert 0 < scores["NoAns_exact"] < 100 and 0 < scores["HasAns_f1"] < 100  # a mix, not a corner case
    # The search includes the threshold used, so it scores at least as well.
    assert scores["best_exact"] >= scores["exact_match"] - 1e-9 and scores["best_f1"] >= scores["f1"] - 1e-9


def test_v2_scoring_rules_on_hand_made_answers():
    gold = {"has": ["Denver Broncos"], "none": [], "none2": [], "only-article": ["the"]}
    spans = {"has": "broncos", "none": "paris", "none2": "", "only-article": ""}
    diffs = {"has": -1.0, "none": 2.0, "none2": -3.0, "only-article": -1.0}
    scores = squad_v2_scores(gold, spans, diffs, null_score_diff_threshold=0.0)
    # has: F1 2/3, EM 0. none: null predicted (diff 2 > 0): 1. none2: "" answered, gold "": 1.
    # only-article: its gold normalises to nothing, so it is scored as the empty answer, which ""
    # matches (it still counts as HasAns: it has an answer).
    assert scores["exact_match"] == pytest.approx(100 * 3 / 4)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 3) / 4)
    assert (scores["HasAns_total"], scores["NoAns_total"]) == (2, 2)  # by the gold answers given
    assert scores["HasAns_exact"] == pytest.approx(50.0) and scores["NoAns_exact"] == 100.0
    # Thresholds: from 2 (no answer anywhere: the two NoAns right) over the sorted diffs -3 (none2
    # answered "": no change), -1 (has +2/3, only-article +1), 2 (none answered "paris": -1).
    assert scores["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert scores["best_f1_thresh"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="no prediction for 1 question"):
        squad_v2_scores({"a": ["x"], "b": []}, {"a": "x"}, {"a": 0.0}, 0.0)


# ----------------------------------------------------------------------------- data


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_generated_v2_data_validates_and_keeps_a_third_unanswerable():
    squad = generate_squad(5, seed=3, version_2=True)
    assert squad["version"] == "v2.0"
    assert task_data.validate_squad(squad, "generated", version_2=True) == 5 * 9
    qas = [qa for _, _, qa in task_data.squad_questions(squad)]
    impossible = [qa for qa in qas if qa["is_impossible"]]
    assert len(impossible) == 5 * UNANSWERABLE_PER_ARTICLE
    for article in squad["data"]:
        person = article["title"].split("-")[0]
        assert person in article["paragraphs"][0]["context"].split()
        for qa in article["paragraphs"][0]["qas"]:
            # The unanswerable ones ask about someone else, whom the context never mentions.
            assert (person in qa["question"].split()) != qa["is_impossible"], qa


def test_v1_file_given_as_v2_and_v2_file_given_as_v1_are_refused(tmp_path):
    v1 = write_json(tmp_path / "v1.json", generate_squad(2, seed=1))
    v2 = write_json(tmp_path / "v2.json", generate_squad(2, seed=1, version_2=True))
    with pytest.raises(DataError, match=r"v1\.json: no question has 'is_impossible' \(version '1.1'\): this is "
                                        r"SQuAD v1\.1 data; set finetune\.squad\.version_2_with_negative: false"):
        task_data.read_squad_json(v1, version_2=True)
    with pytest.raises(DataError, match=r"v2\.json: 6 unanswerable question\(s\) .*SQuAD v2\.0 data; set "
                                        r"finetune\.squad\.version_2_with_negative: true"):
        task_data.read_squad_json(v2, version_2=False)
    out = {"out_train": str(tmp_path / "t.json"), "out_validation": str(tmp_path / "v.json")}
    with pytest.raises(DataError, match="v1.json: no question has 'is_impossible'"):
        task_data.prepare_squad(source="local", local_files={"train": v1, "train_articles": 1},
                                version_2_with_negative=True, **out)
    assert not (tmp_path / "t.json").exists()


def test_the_real_v11_dev_file_given_as_v2_is_refused():
    path = "/work/shared/data/squad/squad-v1.1-dev-part1.json"
    try:
        open(path).close()
    except FileNotFoundError:
        pytest.skip(f"{path} absent (the shared SQuAD dev file)")
    with pytest.raises(DataError, match=r"squad-v1\.1-dev-part1\.json: no question has 'is_impossible' "
                                        r"\(version '1\.1'\): this is SQuAD v1\.1 data"):
        task_data.read_squad_json(path, version_2=True)
    assert task_data.validate_squad(task_data.read_squad_json(path), path) == 8981  # and fine as v1.1


def test_v2_questions_must_agree_with_is_impossible(tmp_path):
    def doc(qa):
        return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
            {"context": "alice lives in paris .", "qas": [{"id": "q1", "question": "where ?", **qa}]}]}]}

    answer = [{"text": "paris", "answer_start": 15}]
    assert task_data.validate_squad(doc({"answers": answer, "is_impossible": False}), "x", True) == 1
    with pytest.raises(DataError, match="x: question q1: 'is_impossible' is true but it has 1 answer"):
        task_data.validate_squad(doc({"answers": answer, "is_impossible": True}), "x", True)
    with pytest.raises(DataError, match="x: question q1: 'is_impossible' is false but it has 0 answer"):
        task_data.validate_squad(doc({"answers": [], "is_impossible": False}), "x", True)
    with pytest.raises(DataError, match="x: question q1: 'is_impossible' is 'yes', expected true or false"):
        task_data.validate_squad(doc({"answers": [], "is_impossible": "yes"}), "x", True)
    bad_plausible = {"answers": [], "is_impossible": True, "plausible_answers": [{"text": "paris", "answer_start": 2}]}
    with pytest.raises(DataError, match="x: question q1: plausible_answers answer_start 2 points at 'ice l'"):
        task_data.validate_squad(doc(bad_plausible), "x", True)


def test_hub_squad_v2_layout_becomes_the_official_v2_json(tmp_path):
    import datasets

    ctx = "alice lives in paris ."
    rows = {"id": ["q1", "q2"], "title": ["t", "t"], "context": [ctx, ctx], "question": ["where ?", "who ?"],
            "answers": [{"text": ["paris"], "answer_start": [15]}, {"text": [], "answer_start": []}]}
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "squad_v2")
    squad = task_data.hub_squad_to_official(str(tmp_path / "squad_v2"), "validation", version_2=True)
    assert squad["version"] == "v2.0"
    assert squad["data"][0]["paragraphs"][0]["qas"] == [
        {"id": "q1", "question": "where ?", "answers": [{"text": "paris", "answer_start": 15}], "is_impossible": False},
        {"id": "q2", "question": "who ?", "answers": [], "is_impossible": True}]
    with pytest.raises(DataError, match=r"squad_v2 \(split validation\): 1 unanswerable question.*set "
                                        r"finetune\.squad\.version_2_with_negative: true"):
        task_data.hub_squad_to_official(str(tmp_path / "squad_v2"), "validation")
    rows = {k: v[:1] for k, v in rows.items()}  # the `squad` (v1.1) layout: every question answered
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "squad")
    with pytest.raises(DataError, match="no question has 'is_impossible'"):
        task_data.hub_squad_to_official(str(tmp_path / "squad"), "validation", version_2=True)


def test_prepared_v2_files_carry_the_version_and_count_the_unanswerable(tmp_path):
    out = {"out_train": str(tmp_path / "train.json"), "out_validation": str(tmp_path / "validation.json")}
    counts = task_data.prepare_squad(source="generated", generated={"train_articles": 4, "validation_articles": 2,
                                                                    "seed": 5}, version_2_with_negative=True, **out)
    assert counts["validation"] == 2 * 9 and counts["validation_unanswerable"] == 2 * UNANSWERABLE_PER_ARTICLE
    prepared = task_data.read_squad_json(out["out_validation"], version_2=None)  # its version field decides
    assert task_data.squad_is_v2(prepared)


def test_hub_dataset_follows_the_version_and_a_mismatch_is_refused_at_start():
    def squad_section(**keys):
        config = yaml.safe_load(TINY_CONFIG.read_text())
        config["finetune"]["squad"].update(keys)
        from snakemake.utils import validate

        validate(config, str(TINY_CONFIG.parents[2] / "config" / "config.schema.yaml"))
        checks.fill_derived_defaults(config)
        return config

    assert squad_section()["finetune"]["squad"]["hub"]["name"] == "squad"
    assert squad_section(version_2_with_negative=True)["finetune"]["squad"]["hub"]["name"] == "squad_v2"
    config = squad_section(version_2_with_negative=True, source="hub", hub={"name": "rajpurkar/squad"})
    with pytest.raises(checks.ConfigError, match="finetune.squad.hub.name 'rajpurkar/squad' is SQuAD v1.1 but "
                                                 "finetune.squad.version_2_with_negative is true; use 'squad_v2'"):
        checks.check_config(config)


# ----------------------------------------------------------------------------- training labels and decoding


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(make_tiny_model(tmp_path_factory.mktemp("model")))


def test_unanswerable_questions_are_labelled_at_cls(tokenizer):
    examples = task_data.squad_examples(generate_squad(2, seed=2, version_2=True))
    features = train_features(tokenizer, examples, max_length=64, doc_stride=16)
    from bertflow.qa import _tokenize

    windows = _tokenize(tokenizer, examples, 64, 16)
    for window, sample in enumerate(windows.sample_of_window):
        cls = features["input_ids"][window].index(tokenizer.cls_token_id)
        if not examples[sample]["answers"]["text"]:
            assert features["start_positions"][window] == features["end_positions"][window] == cls
    answered = [w for w, s in enumerate(windows.sample_of_window) if examples[s]["answers"]["text"]]
    assert any(features["start_positions"][w] != 0 for w in answered)


def test_null_answer_decoding_takes_the_lowest_cls_score_and_the_threshold():
    examples = [{"id": "a", "context": "paris is big"}, {"id": "b", "context": "rome"}]
    example_index = [0, 0, 1]  # example a has two windows
    length = 6
    offsets = np.full((3, length, 2), -1, dtype=np.int32)
    offsets[0, 3:6] = [(0, 5), (6, 8), (9, 12)]
    offsets[1, 3:4] = [(6, 8)]
    offsets[2, 2:3] = [(0, 4)]
    input_ids = np.array([[5, 2, 9, 7, 7, 7], [2, 9, 9, 7, 0, 0], [9, 2, 7, 0, 0, 0]])  # [CLS] = 2, not at 0
    cls_index = cls_positions(input_ids, cls_token_id=2)
    assert cls_index.tolist() == [1, 0, 1]
    start, end = np.zeros((3, length)), np.zeros((3, length))
    start[0, 3], end[0, 3] = 3.0, 2.0  # "paris": 5.0
    start[0, 1] = end[0, 1] = 4.0      # null in window 0: 8.0
    start[1, 0] = end[1, 0] = 3.5      # null in window 1: 7.0, the lowest: a's null score
    start[1, 1] = 50.0                 # question tokens never form an answer
    start[2, 2], end[2, 2] = 1.0, 1.0  # "rome": 2.0; null 0.0
    decoded = decode_answers_v2(examples, example_index, offsets, start, end, n_best=5, max_answer_length=5,
                                cls_index=cls_index, null_score_diff_threshold=0.0)
    assert decoded.spans == {"a": "paris", "b": "rome"}
    assert decoded.null_score_diffs == pytest.approx({"a": 2.0, "b": -2.0})
    assert decoded.answers == {"a": "", "b": "rome"}
    relaxed = decode_answers_v2(examples, example_index, offsets, start, end, n_best=5, max_answer_length=5,
                                cls_index=cls_index, null_score_diff_threshold=2.5)
    assert relaxed.answers == {"a": "paris", "b": "rome"}
    with pytest.raises(ValueError, match=r"no \[CLS\] token \(id 3\)"):
        cls_positions(input_ids, cls_token_id=3)
    # With one candidate each, the best start lies after the best end: no valid span, null answer.
    offsets_two = offsets[2:].copy()
    offsets_two[0, 3] = (0, 4)  # a second context token
    start[2, 2], end[2, 2], start[2, 3] = -1.0, 5.0, 3.0
    stuck = decode_answers_v2(examples[1:], [0], offsets_two, start[2:], end[2:], n_best=1, max_answer_length=5,
                              cls_index=cls_index[2:], null_score_diff_threshold=0.0)
    assert stuck.answers == {"b": ""} and stuck.null_score_diffs == {"b": float("inf")}
    assert stuck.rows() == {"b": {"prediction_text": "", "best_span": "", "null_score_diff": None}}


# ----------------------------------------------------------------------------- through the workflow


def test_workflow_runs_squad_v2_and_reports_the_official_v2_metric(tiny_run_copy, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["finetune"]["squad"]["version_2_with_negative"] = True
    (tmp_path / "v2.yaml").write_text(yaml.safe_dump(config))
    target = "results/finetune/squad/pretrained/seed1/metrics.json"
    snakemake(tiny_run_copy, "--", target, configfile=tmp_path / "v2.yaml")
    results = tiny_run_copy / "results"
    validation = json.loads((results / "data/squad/validation.json").read_text())
    qas = [qa for _, _, qa in task_data.squad_questions(validation)]
    metrics = json.loads((results / "finetune/squad/pretrained/seed1/metrics.json").read_text())
    assert validation["version"] == "v2.0"
    assert metrics["NoAns_total"] == sum(qa["is_impossible"] for qa in qas) == 6 * UNANSWERABLE_PER_ARTICLE
    assert metrics["HasAns_total"] == sum(not qa["is_impossible"] for qa in qas) == 6 * 6
    assert metrics["total"] == metrics["validation_examples"] == len(qas)
    assert (metrics["task_metrics"], metrics["task_label"], metrics["glue"]) == (["exact_match", "f1"],
                                                                                  "SQuAD v2.0", False)
    for key in ("exact_match", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1"):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert metrics["best_exact"] >= metrics["exact_match"] - 1e-9
    predictions = json.loads((results / "finetune/squad/pretrained/seed1/predictions.json").read_text())
    assert set(predictions) == {qa["id"] for qa in qas}
    no_answer = sum(p["prediction_text"] == "" for p in predictions.values())
    # NoAns exact is the share of unanswerable questions predicted "" (their only gold answer).
    impossible = {qa["id"] for qa in qas if qa["is_impossible"]}
    assert metrics["NoAns_exact"] == pytest.approx(
        100 * sum(predictions[q]["prediction_text"] == "" for q in impossible) / len(impossible))
    assert no_answer == sum(p["null_score_diff"] is None or p["null_score_diff"] > 0 for p in predictions.values())
