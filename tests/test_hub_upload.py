"""Hub upload with the real huggingface_hub client against a loopback Hub (tests/support/fake_hub.py).

Xet is off (HF_HUB_DISABLE_XET) so the client uses preupload + LFS batch/PUT + NDJSON commit,
which the loopback server implements with the Hub's hashing rules. One opt-in test pushes to
the real Hub: it runs only with HF_TOKEN set, network, and BERTFLOW_LIVE_HUB=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
import yaml
from support.fake_hub import FakeHub
from support.report import make_stage_outputs, write_card
from huggingface_hub import ModelCard

from bertflow.errors import ConfigError, ResourceError
from bertflow.hub import assemble_folder, file_hashes, push_folder, upload_layout, upload_stage

# The client streams LFS files with httpx `data=`, which httpx deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use .content=.:DeprecationWarning")

TOKEN = "hf_valid_write_token"
SETTINGS = {"enabled": True, "repo_id": "alice/tiny-bert", "private": True, "branch": "main",
            "commit_message": "Upload from test", "delete_stale": False, "max_attempts": 2,
            "retry_wait_s": 0.0, "timeout_s": 10.0}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The upload folder as the upload_folder rule assembles it (model, tokenizer, card, metrics)."""
    root = tmp_path_factory.mktemp("upload")
    paths = make_stage_outputs(root)
    paths["card"] = str(root / "README.md")
    write_card(paths, paths["card"])
    assemble_folder(upload_layout(paths, ["sst2", "squad"]), root / "folder")
    (root / "folder" / ".snakemake_timestamp").touch()  # as Snakemake leaves in a directory() output
    return root / "folder"


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(tokens={TOKEN: "alice"}) as server:
        # Calls that ignore HfApi(endpoint=...) (the client's user-agent registry) stay on loopback too.
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        yield server


def push(hub, folder, receipt, **overrides):
    return upload_stage(folder=str(folder), receipt=str(receipt), settings={**SETTINGS, **overrides}, endpoint=hub.url)


def test_folder_layout(folder):
    names = set(file_hashes(folder))
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "params_report.json",
            "train_info.json", "perplexity.csv", "perplexity.png", "eval/sst2_summary.json",
            "eval/squad_summary.json"} <= names


def test_push_sends_exactly_the_local_files(hub, folder, tmp_path):
    receipt = push(hub, folder, tmp_path / "receipt.json")
    assert receipt["pushed"] and receipt["new_commit"] and receipt["attempts"] == 1
    remote = hub.files("alice/tiny-bert")
    local = file_hashes(folder)
    assert set(remote) == set(local) | {".gitattributes"} and ".snakemake_timestamp" not in local
    for path, info in local.items():
        assert hashlib.sha256(remote[path]).hexdigest() == info["sha256"] == receipt["files"][path]["sha256"]
    assert ("PUT", f"/lfs-objects/{local['model.safetensors']['sha256']}") in hub.requests  # weights went via LFS
    assert hub.repos["alice/tiny-bert"].private is True
    saved = json.loads((tmp_path / "receipt.json").read_text())
    assert saved["commit"] == hub.commits("alice/tiny-bert")[-1]["sha"] and saved["commit_url"].endswith(saved["commit"])


def test_card_metadata_round_trips(hub, folder, tmp_path):
    push(hub, folder, tmp_path / "receipt.json")
    card = ModelCard(hub.files("alice/tiny-bert")["README.md"].decode())
    assert card.data.pipeline_tag == "fill-mask" and card.data.license == "apache-2.0"
    assert card.data.language == ["en"] and card.data.library_name == "transformers"
    assert {r.metric_type for r in card.data.eval_results} == {"perplexity", "accuracy", "f1", "exact_match"}
    # The client had the metadata validated by the server before uploading anything.
    assert hub.yaml_validated and hub.yaml_validated[-1]["pipeline_tag"] == "fill-mask"
    assert yaml.safe_load(str(card).split("---")[1])["model-index"][0]["name"] == "tiny-bert"


def test_unchanged_content_makes_no_commit(hub, folder, tmp_path):
    first = push(hub, folder, tmp_path / "first.json")
    commits = len(hub.commits("alice/tiny-bert"))
    second = push(hub, folder, tmp_path / "second.json")
    assert len(hub.commits("alice/tiny-bert")) == commits
    assert second["new_commit"] is False and second["commit"] == first["commit"]
    assert first["commit_made_by"] == "this run" and second["commit_made_by"].startswith("an earlier run")
    assert sum(1 for method, path in hub.requests if path.startswith("/lfs-objects/")) == 1  # weights sent once


def test_a_rerun_after_a_push_killed_mid_commit_names_the_interrupted_attempt(hub, folder, tmp_path, monkeypatch):
    """SIGTERM while the commit request was in flight: the Hub made the commit, no receipt was
    written. The rerun has nothing to commit, and its receipt says whose the commit is."""
    import bertflow.hub as hub_module

    real_push = hub_module.push_folder

    def killed_once_the_commit_is_sent(*args, **kwargs):
        real_push(*args, **kwargs)
        raise SystemExit(143)

    monkeypatch.setattr(hub_module, "push_folder", killed_once_the_commit_is_sent)
    with pytest.raises(SystemExit):
        push(hub, folder, tmp_path / "receipt.json")
    assert not (tmp_path / "receipt.json").exists() and (tmp_path / ".receipt.json.attempt").exists()
    made = hub.commits("alice/tiny-bert")[-1]["sha"]

    monkeypatch.setattr(hub_module, "push_folder", real_push)
    rerun = push(hub, folder, tmp_path / "receipt.json")
    assert rerun["new_commit"] is False and rerun["commit"] == made
    assert rerun["commit_made_by"].startswith("an interrupted earlier attempt (started 20")
    assert rerun["interrupted_attempt"]["head_before_commit"] != made
    assert json.loads((tmp_path / "receipt.json").read_text())["commit_made_by"] == rerun["commit_made_by"]
    assert not (tmp_path / ".receipt.json.attempt").exists()
    again = push(hub, folder, tmp_path / "receipt.json")
    assert again["commit_made_by"] == "an earlier run (the Hub already had these files)"
    assert "interrupted_attempt" not in again


def test_changed_file_commits_only_that_file(hub, folder, tmp_path):
    push(hub, folder, tmp_path / "first.json")
    changed = tmp_path / "changed"
    assemble_folder({"": str(folder)}, changed)
    (changed / "perplexity.csv").write_text("epoch,perplexity\n1,99.0\n")
    receipt = push(hub, changed, tmp_path / "second.json")
    assert receipt["new_commit"] and receipt["parent_commit"] != receipt["commit"]
    operations = [line["value"]["path"] for line in hub.commit_payloads[-1] if line["key"] != "header"]
    assert operations == ["perplexity.csv"]


def test_branch_and_delete_stale(hub, folder, tmp_path):
    push(hub, folder, tmp_path / "main.json", private=False)
    receipt = push(hub, folder, tmp_path / "dev.json", branch="dev", private=False)
    assert receipt["branch"] == "dev" and receipt["new_commit"] is False  # dev starts from main's content
    smaller = tmp_path / "smaller"
    assemble_folder({"": str(folder)}, smaller)
    (smaller / "perplexity.png").unlink()
    push(hub, smaller, tmp_path / "dev2.json", branch="dev", private=False, delete_stale=True)
    assert "perplexity.png" not in hub.files("alice/tiny-bert", "dev")
    assert "perplexity.png" in hub.files("alice/tiny-bert", "main") and ".gitattributes" in hub.files("alice/tiny-bert", "dev")


def test_private_push_refuses_an_existing_public_repo(hub, folder, tmp_path):
    push(hub, folder, tmp_path / "public.json", private=False)
    with pytest.raises(ConfigError, match="already exists as a public repo"):
        push(hub, folder, tmp_path / "private.json", private=True)
    assert not (tmp_path / "private.json").exists()


def test_wrong_token_is_a_clear_error_without_receipt(hub, folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    with pytest.raises(ConfigError, match=r"rejected \$HF_TOKEN for alice/tiny-bert \(HTTP 401\)") as err:
        push(hub, folder, tmp_path / "receipt.json")
    assert "hf_not_a_valid_token" not in str(err.value)
    assert not (tmp_path / "receipt.json").exists() and "alice/tiny-bert" not in hub.repos


def test_missing_token_fails_before_any_request(hub, folder, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(ConfigError, match=r"HF_TOKEN is not set"):
        push(hub, folder, tmp_path / "receipt.json")
    assert hub.requests == [] and not (tmp_path / "receipt.json").exists()


def test_dropped_connection_is_retried_then_fails_clearly(hub, folder, tmp_path):
    hub.fail(r"/commit/", times=100)  # every commit request: the connection closes without a response
    with pytest.raises(ResourceError, match=r"after 2 attempts .*Server disconnected") as err:
        push(hub, folder, tmp_path / "receipt.json")
    assert "rerun" in str(err.value)
    assert sum(1 for method, path in hub.requests if "/commit/" in path) == 2
    assert not (tmp_path / "receipt.json").exists()
    assert len(hub.commits("alice/tiny-bert")) == 1  # only the repo's initial commit


def test_one_dropped_connection_and_a_503_are_recovered(hub, folder, tmp_path):
    hub.fail(r"/commit/", times=1)
    hub.fail(r"/api/repos/create", times=1, mode="503")
    receipt = push(hub, folder, tmp_path / "receipt.json", max_attempts=3)
    assert receipt["attempts"] == 3 and receipt["new_commit"]
    assert set(file_hashes(folder)) <= set(hub.files("alice/tiny-bert"))


def test_disabled_upload_writes_dry_run_receipt(hub, folder, tmp_path):
    receipt = push(hub, folder, tmp_path / "receipt.json", enabled=False)
    assert receipt["pushed"] is False and "upload.enabled: true" in receipt["how_to_enable"]
    assert receipt["files"] == file_hashes(folder) and receipt["would_push_to"]["repo_id"] == "alice/tiny-bert"
    assert hub.requests == []


def test_token_never_lands_in_outputs_or_logs(hub, folder, tmp_path, caplog, monkeypatch):
    caplog.set_level("DEBUG")
    push(hub, folder, tmp_path / "receipt.json")
    hub.fail(r"/commit/", times=100)
    (tmp_path / "changed").mkdir()
    (tmp_path / "changed" / "x.txt").write_text("x")
    with pytest.raises(ResourceError) as err:
        push(hub, tmp_path / "changed", tmp_path / "failed.json")
    monkeypatch.setenv("HF_TOKEN", TOKEN + "_wrong")
    with pytest.raises(ConfigError) as wrong:
        push(hub, folder, tmp_path / "wrong.json")
    # The token was really used (so the search below is meaningful) ...
    assert any(h.get("authorization") == f"Bearer {TOKEN}" for h in hub.headers_seen)
    # ... and appears in no file written, no log record, no error message, no remote file.
    written = [p for p in [*tmp_path.rglob("*"), *folder.rglob("*")] if p.is_file()]
    assert written and all(TOKEN.encode() not in p.read_bytes() for p in written)
    assert TOKEN not in caplog.text and TOKEN not in str(err.value) and TOKEN not in str(wrong.value)
    assert all(TOKEN.encode() not in content for content in hub.files("alice/tiny-bert").values())


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not (os.environ.get("HF_TOKEN") and os.environ.get("BERTFLOW_LIVE_HUB") == "1"),
                    reason="live Hub test: set HF_TOKEN (write) and BERTFLOW_LIVE_HUB=1")
def test_live_hub_push_is_idempotent(tmp_path):
    if not _hub_reachable():
        pytest.skip("huggingface.co is not reachable from this machine")
    from huggingface_hub import HfApi

    token = os.environ["HF_TOKEN"]
    api = HfApi(token=token)
    repo_id = os.environ.get("BERTFLOW_LIVE_HUB_REPO") or f"{api.whoami()['name']}/bertflow-live-test"
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "README.md").write_text("---\nlicense: apache-2.0\ntags: [bertflow-test]\n---\n# test\n")
    (tmp_path / "f" / "data.json").write_text(json.dumps({"probe": str(tmp_path)}))
    try:
        first = push_folder(tmp_path / "f", repo_id=repo_id, token=token, private=True, retry_wait_s=5)
        second = push_folder(tmp_path / "f", repo_id=repo_id, token=token, private=True, retry_wait_s=5)
        assert first["new_commit"] and not second["new_commit"] and second["commit"] == first["commit"]
    finally:
        api.delete_repo(repo_id, missing_ok=True)
