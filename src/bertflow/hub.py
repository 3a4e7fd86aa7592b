"""Publish the model folder to the Hugging Face Hub (or, when disabled, only prepare it).

`assemble_folder` writes the exact folder that would be pushed; `push_folder` creates the repo
(`exist_ok=True`), makes the branch, and `upload_folder`s it. huggingface_hub asks the Hub for
the hash of every file already there (the `preupload` call) and leaves unchanged files out, so a
rerun with the same content makes no commit; the receipt says whether a new commit was made, and
whose the branch's last commit is (this run's, an earlier run's, or that of an attempt killed after
sending its commit request).

The token comes from the `HF_TOKEN` environment variable only, is passed to the client and
nowhere else: it is not a parameter, is scrubbed from error messages and never reaches a file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from .errors import ConfigError, DataError, PipelineError, ResourceError
from .hashing import sha256_file
from .io import read_json, write_json
from .provenance import environment_info

log = logging.getLogger(__name__)

TOKEN_ENV = "HF_TOKEN"
# Snakemake's marker in directory outputs: bookkeeping of this machine, never published.
IGNORED = (".snakemake_timestamp",)
RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
HOW_TO_ENABLE = (
    "To publish: set `upload.enabled: true` and `upload.repo_id: <user-or-org>/<name>` in your config, "
    "export HF_TOKEN=<a write token from https://huggingface.co/settings/tokens> in the shell that runs "
    "Snakemake, then rerun the workflow (only the upload step runs); see docs/reporting.md."
)


def file_hashes(folder: str | Path) -> dict[str, dict]:
    """Repo path -> sha256 and size of every file below `folder`."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): {"sha256": sha256_file(path), "size": path.stat().st_size}
        for path in sorted(folder.rglob("*")) if path.is_file() and path.name not in IGNORED
    }


def assemble_folder(sources: dict[str, str], folder: str | Path) -> dict[str, dict]:
    """Build the upload folder from `sources` (repo path -> local file, or local folder copied to
    that prefix; "" is the root). Rebuilt from scratch so it holds exactly what would be pushed."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for repo_path, local in sources.items():
        local = Path(local)
        target = partial / repo_path
        if local.is_dir():
            shutil.copytree(local, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*IGNORED))
        elif local.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, target)
        else:
            raise DataError(f"{local}: missing; the upload folder needs it as {repo_path or 'the repo root'}")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return file_hashes(folder)


# Named input of the upload_folder rule -> path in the repo ("" = the root: model and tokenizer files).
UPLOAD_LAYOUT = {
    "model": "",
    "card": "README.md",
    "params_json": "params_report.json",
    "params_md": "params_report.md",
    "train_info": "train_info.json",
    "perplexity": "perplexity.csv",
    "plot": "perplexity.png",
}


def upload_layout(inputs, tasks: list[str]) -> dict[str, str]:
    """Repo path -> local path of everything pushed; fine-tuning summaries go to eval/."""
    layout = {repo_path: str(inputs[name]) for name, repo_path in UPLOAD_LAYOUT.items()}
    layout.update({f"eval/{task}_summary.json": str(inputs[task]) for task in tasks})
    return layout


def token_from_env() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(f"upload.enabled is true but ${TOKEN_ENV} is not set; {HOW_TO_ENABLE}")
    return token


@contextlib.contextmanager
def http_timeout(seconds: float):
    """Give huggingface_hub's shared HTTP client a timeout (its default waits forever)."""
    import httpx
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    default = getattr(_http, "default_client_factory", None)

    def factory():
        client = default() if default is not None else httpx.Client(follow_redirects=True)
        client.timeout = httpx.Timeout(seconds)
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(default or (lambda: httpx.Client(follow_redirects=True)))


def _causes(err: BaseException):
    """The exception and everything it was raised from (the client wraps errors)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _classify(err: BaseException) -> tuple[str, int | None]:
    """('auth' | 'retry' | 'fatal', HTTP status) of a failed push."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    for cause in _causes(err):
        if isinstance(cause, HfHubHTTPError) and cause.response is not None:
            status = cause.response.status_code
            if status in (401, 403):
                return "auth", status
            return ("retry" if status in RETRYABLE_STATUS else "fatal"), status
        if isinstance(cause, httpx.TransportError):
            return "retry", None
    return "fatal", None


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _push_once(api, folder: Path, *, repo_id: str, private: bool, branch: str, commit_message: str,
               delete_stale: bool, before_commit=None) -> dict:
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    before = api.repo_info(repo_id, revision=branch)
    if private and before.private is False:
        raise ConfigError(
            f"upload.private is true but {repo_id} already exists as a public repo; make it private on the Hub "
            "(Settings > Change visibility) or set upload.private: false"
        )
    if before_commit is not None:
        before_commit(before.sha)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=folder, revision=branch, commit_message=commit_message,
        delete_patterns="*" if delete_stale else None,
        ignore_patterns=[*IGNORED, *(f"**/{name}" for name in IGNORED)],
    )
    return {
        "repo_url": str(repo_url), "private": before.private, "commit": commit.oid, "commit_url": commit.commit_url,
        "parent_commit": before.sha, "new_commit": commit.oid != before.sha,
    }


def push_folder(folder: str | Path, *, repo_id: str, token: str, private: bool = False, branch: str = "main",
                commit_message: str = "Upload model from bertflow", endpoint: str | None = None,
                max_attempts: int = 3, retry_wait_s: float = 10.0, timeout_s: float = 60.0,
                delete_stale: bool = False, before_commit=None) -> dict:
    """Push `folder` to `repo_id`; retried on network errors and 5xx; returns what was pushed.
    `before_commit(head)` is called with the branch's head commit just before the commit request."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    api = HfApi(endpoint=endpoint, token=token)
    wait, last = retry_wait_s, None
    with http_timeout(timeout_s):
        for attempt in range(1, max_attempts + 1):
            try:
                result = _push_once(api, folder, repo_id=repo_id, private=private, branch=branch,
                                    commit_message=commit_message, delete_stale=delete_stale,
                                    before_commit=before_commit)
                return {"endpoint": api.endpoint, "repo_id": repo_id, "branch": branch, "attempts": attempt, **result}
            except PipelineError:
                raise
            except Exception as err:  # the client raises many types; classify by cause
                kind, status = _classify(err)
                message = _scrub(f"{type(err).__name__}: {err}", token)
                if kind == "auth":
                    raise ConfigError(
                        f"the Hub at {api.endpoint} rejected ${TOKEN_ENV} for {repo_id} (HTTP {status}); export a "
                        f"token with write access to that namespace. Server said: {message}"
                    ) from None
                if kind == "fatal":
                    raise DataError(f"pushing {folder} to {repo_id} on {api.endpoint} failed: {message}") from None
                last = message
                log.warning("push attempt %d/%d to %s failed: %s", attempt, max_attempts, repo_id, message)
                if attempt < max_attempts:
                    time.sleep(wait)
                    wait *= 2
    raise ResourceError(
        f"could not push {folder} to {repo_id} on {api.endpoint} after {max_attempts} attempts (last error: {last}); "
        "check the network of this node (uploads run on the submit/login node), then rerun: files the Hub "
        "already has are not sent again"
    )


def commit_author(pushed: dict, interrupted: dict | None, target: dict, files: dict) -> str:
    """Who made the commit the branch now ends with: this run; an attempt that was killed after
    sending its commit (the head moved since it looked, to exactly these files); or an earlier run."""
    if pushed["new_commit"]:
        return "this run"
    same_push = interrupted is not None and interrupted.get("files") == files and all(
        interrupted.get(key) == value for key, value in target.items())
    if same_push and interrupted.get("head_before_commit") != pushed["commit"]:
        return f"an interrupted earlier attempt (started {interrupted.get('started_utc')}): its commit reached the Hub"
    return "an earlier run (the Hub already had these files)"


def upload_stage(*, folder: str, receipt: str, settings: dict, endpoint: str | None = None) -> dict:
    """Stage entry: push the assembled folder when upload.enabled, else record the dry run."""
    folder_path = Path(folder)
    files = file_hashes(folder_path)
    target = {"repo_id": settings["repo_id"], "branch": settings["branch"], "private": settings["private"]}
    if not settings["enabled"]:
        result = {"pushed": False, "reason": "upload.enabled is false", "would_push_to": target,
                  "folder": str(folder_path), "files": files, "how_to_enable": HOW_TO_ENABLE,
                  "environment": environment_info()}
        write_json(receipt, result)
        log.info("dry run: %d files in %s would go to %s; %s", len(files), folder, settings["repo_id"], HOW_TO_ENABLE)
        return result
    token = token_from_env()
    attempt_file = Path(receipt).with_name(f".{Path(receipt).name}.attempt")
    interrupted = read_json(attempt_file) if attempt_file.is_file() else None

    def record_attempt(head: str | None) -> None:  # read back by a rerun if this run is killed mid-commit
        write_json(attempt_file, {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  **target, "files": files, "head_before_commit": head})

    pushed = push_folder(
        folder_path, repo_id=settings["repo_id"], token=token, private=settings["private"],
        branch=settings["branch"], commit_message=settings["commit_message"], endpoint=endpoint,
        max_attempts=settings["max_attempts"], retry_wait_s=settings["retry_wait_s"],
        timeout_s=settings["timeout_s"], delete_stale=settings["delete_stale"], before_commit=record_attempt,
    )
    result = {"pushed": True, **pushed, "commit_made_by": commit_author(pushed, interrupted, target, files),
              "folder": str(folder_path), "files": files, "environment": environment_info()}
    if interrupted is not None:
        result["interrupted_attempt"] = {key: interrupted.get(key) for key in ("started_utc", "head_before_commit")}
    write_json(receipt, result)
    attempt_file.unlink(missing_ok=True)
    log.info("pushed %s@%s: commit %s (%s)", settings["repo_id"], settings["branch"], pushed["commit"],
             "new commit" if pushed["new_commit"] else "content unchanged, no commit")
    return result
