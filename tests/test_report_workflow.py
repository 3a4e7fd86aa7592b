"""Report, card and upload stages inside the tiny end-to-end run (conftest's shared `tiny_run`)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re

import pytest
import yaml
from support.workflow import TINY_CONFIG, snakemake
from support.fake_hub import FakeHub
from huggingface_hub import ModelCard
from support.report_browser import find_chromium, open_result

from test_workflow import planned_rules

from bertflow.hub import file_hashes

LEADERBOARD_HEADER = ("| model | seq_len | download size | SST-2 acc | SQuAD v1.1 EM | SQuAD v1.1 F1 | GLUE score | rank | "
                      "vocab size | d_model | d_ff | layers | parameters | SST-2 wall time | SST-2 train ex/s | "
                      "SQuAD v1.1 wall time | SQuAD v1.1 train ex/s |")


def test_default_run_writes_reports_card_and_dry_run_folder(tiny_run):
    results = tiny_run / "results"
    report = (results / "report.md").read_text()
    assert LEADERBOARD_HEADER in report and "| pretrained | 512 |" in report
    with open(results / "leaderboard.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["model"] == "pretrained" and float(row["glue_score"]) == float(row["sst2_accuracy"])
    assert float(row["sst2_train_examples_per_s"]) > 0 and "## Vocabulary reduction" in report
    assert "![Validation perplexity per epoch](pretrain/perplexity.png)" in report
    for name in ("pretrained", "sst2/pretrained", "squad/pretrained"):
        params = json.loads((results / "reports" / "params" / f"{name}.json").read_text())
        assert params["closed_form"]["total"] == params["parameters"]["total"]
        assert f"[{name}](reports/params/{name}.md)" in report
    # The card's numbers are the pipeline's numbers.
    card = ModelCard.load(results / "card" / "README.md")
    last = list(csv.DictReader(open(results / "pretrain" / "perplexity.csv")))[-1]
    sst2 = json.loads((results / "finetune" / "sst2" / "pretrained" / "summary.json").read_text())
    metrics = {(r.task_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert metrics[("fill-mask", "perplexity")] == round(float(last["perplexity"]), 4)
    assert metrics[("text-classification", "accuracy")] == round(sst2["mean"]["accuracy"], 2)
    # Upload is off by default: the exact folder plus a receipt that says how to turn it on.
    receipt = json.loads((results / "upload" / "receipt.json").read_text())
    folder = results / "upload" / "folder"
    assert receipt["pushed"] is False and "HF_TOKEN" in receipt["how_to_enable"]
    assert receipt["files"] == file_hashes(folder) and ".snakemake_timestamp" not in receipt["files"]
    assert (folder / "README.md").read_bytes() == (results / "card" / "README.md").read_bytes()
    assert {"model.safetensors", "config.json", "tokenizer.json", "eval/sst2_summary.json"} <= set(receipt["files"])


def test_upload_rule_pushes_once_to_a_loopback_hub(tiny_run_copy, tmp_path):
    token = "hf_workflow_test_token"
    config = yaml.safe_load(TINY_CONFIG.read_text())  # key order kept: other rules' params stay identical
    config["upload"] = {"enabled": True, "repo_id": "alice/tiny-bert", "retry_wait_s": 0, "max_attempts": 2}
    (tmp_path / "push.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    config = tmp_path / "push.yaml"
    with FakeHub(tokens={token: "alice"}) as hub:
        env = {"HF_TOKEN": token, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
        # The card names the repo, so the card, the folder, the push and the summary rerun; nothing upstream.
        planned = planned_rules(snakemake(tiny_run_copy, "--dry-run", "--quiet", "rules", configfile=config, env=env))
        assert planned == {"model_card", "upload_folder", "upload", "summary_report", "card_html", "summary_html",
                           "all"}
        snakemake(tiny_run_copy, configfile=config, env=env)
        receipt_path = tiny_run_copy / "results" / "upload" / "receipt.json"
        first = json.loads(receipt_path.read_text())
        assert first["pushed"] and first["new_commit"] and first["endpoint"] == hub.url
        remote = hub.files("alice/tiny-bert")
        assert {path: info["sha256"] for path, info in first["files"].items()} == {
            path: hashlib.sha256(remote[path]).hexdigest() for path in first["files"]}
        snakemake(tiny_run_copy, "--forcerun", "upload", configfile=config, env=env)
        second = json.loads(receipt_path.read_text())
        assert second["new_commit"] is False and len(hub.commits("alice/tiny-bert")) == 2
        card = yaml.safe_load(remote["README.md"].decode().split("---")[1])
        assert card["model-index"][0]["name"] == "tiny-bert"
    for path in (tiny_run_copy / "results").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_snakemake_report_html_has_captions(report_html):
    html = report_html.read_text(errors="replace")
    assert "checked against the closed-form formula" in html and "leaderboard of every fine-tuned model" in html
    assert "The leaderboard of results/report.md as CSV" in html and "leaderboard.csv" in html


@pytest.fixture(scope="module")
def report_html(tiny_run, tmp_path_factory):
    """`snakemake --report` of the shared tiny run, written outside it (the run stays untouched)."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    snakemake(tiny_run, "--report", str(path))
    return path


def embedded_pages(report) -> dict[str, str]:
    """Title -> text of every HTML result the report embeds (as base64 data URIs)."""
    pages = {}
    for data in re.findall(r"data:text/html[^\"',]*?;base64,([A-Za-z0-9+/=]+)", report.read_text(errors="replace")):
        page = base64.b64decode(data).decode("utf-8", errors="replace")
        title = re.search(r"<title>(.*?)</title>", page)
        if title:
            pages[title.group(1)] = page
    return pages


def test_report_embeds_the_results_as_html_pages(report_html):
    """What CI checks without a browser: the pages are inside report.html, tables rendered."""
    pages = embedded_pages(report_html)
    assert {"Summary report", "Model card", "Parameter report: pretrained",
            "Parameter report: sst2/pretrained", "Parameter report: squad/pretrained"} <= set(pages)
    summary = pages["Summary report"]
    assert "<h2>Leaderboard</h2>" in summary and re.search(r"<th[^>]*>SST-2 acc</th>", summary)
    assert re.search(r"<td[^>]*>pretrained</td>", summary) and 'src="data:image/png;base64,' in summary
    card = pages["Model card"]
    assert "<h2>How to use</h2>" in card and "Hub metadata (YAML header)" in card and "model-index" in card


def test_leaderboard_is_visible_in_a_real_browser(report_html, tmp_path):
    """Headless Chromium opens the report, clicks Summary and the page's eye button, like a user."""
    if find_chromium() is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it as root)")
    shot = tmp_path / "summary.png"
    texts = open_result(report_html, "Summary", "results/html/report.html", shot)
    shown = "\n".join(texts)
    assert "Leaderboard" in shown and "GLUE score" in shown and "pretrained" in shown
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
