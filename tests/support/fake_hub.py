"""A Hugging Face Hub stand-in on 127.0.0.1 that speaks the endpoints huggingface_hub 1.x uses to
create a repo and upload a folder without Xet (HF_HUB_DISABLE_XET=1):

  POST /api/repos/create                          create (409 when it exists)
  POST /api/validate-yaml                         README.md metadata check
  GET  /api/models/{repo}[/revision/{rev}]        repo info (head sha, private)
  POST /api/models/{repo}/branch/{branch}         create a branch (409 when it exists)
  GET  /api/models/{repo}/tree/{rev}              list files (for delete_patterns)
  POST /api/models/{repo}/preupload/{rev}         upload mode + remote oid of each file
  POST /{repo}.git/info/lfs/objects/batch         LFS batch: where to PUT each object
  PUT  /lfs-objects/{oid}                         the LFS object itself (like a presigned URL: no auth)
  GET  /api/agent-harnesses                       registry the client fetches for its user agent
  POST /api/models/{repo}/commit/{rev}            NDJSON commit (file / lfsFile / deletedFile)

Like the real Hub, remote oids are the git blob sha1 for regular files and the sha256 for LFS
files, so the client's "skip unchanged files" logic runs for real. Failures can be injected:
`fail(path_regex, times, mode)` drops the connection or answers 503 for matching requests.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.h5", "*.msgpack", "*.onnx", "*.ckpt")
LFS_MIN_SIZE = 10 * 2**20
PUBLIC_PATHS = ("/api/agent-harnesses",)
GITATTRIBUTES = b"".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n".encode() for p in LFS_PATTERNS)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool
    branches: dict[str, list[dict]] = field(default_factory=dict)  # branch -> commits (each: sha, files)

    def head(self, branch: str) -> dict | None:
        commits = self.branches.get(branch)
        return commits[-1] if commits else None


class FakeHub:
    """State of the fake Hub plus the server thread; use as a context manager."""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = tokens or {"hf_valid_write_token": "alice"}  # token -> user
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.yaml_validated: list[dict] = []
        self.commit_payloads: list[list[dict]] = []
        self.headers_seen: list[dict] = []
        self._failures: list[list] = []  # [regex, remaining, mode]
        self._lock = threading.Lock()
        self._commit_counter = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- test helpers

    def fail(self, path_regex: str, times: int, mode: str = "drop") -> None:
        """The next `times` requests whose path matches are dropped (`drop`) or answered 503."""
        self._failures.append([re.compile(path_regex), times, mode])

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        head = self.repos[repo_id].head(branch)
        return {path: self._content(entry) for path, entry in head["files"].items()}

    def commits(self, repo_id: str, branch: str = "main") -> list[dict]:
        return self.repos[repo_id].branches.get(branch, [])

    def _content(self, entry: dict) -> bytes:
        return self.lfs[entry["sha256"]] if entry["lfs"] else entry["content"]

    def _take_failure(self, path: str) -> str | None:
        with self._lock:
            for failure in self._failures:
                if failure[1] > 0 and failure[0].search(path):
                    failure[1] -= 1
                    return failure[2]
        return None

    def _new_commit(self, repo: Repo, branch: str, files: dict) -> dict:
        with self._lock:
            self._commit_counter += 1
            sha = hashlib.sha1(f"commit {self._commit_counter} {sorted(files)}".encode()).hexdigest()
        commit = {"sha": sha, "files": files}
        repo.branches.setdefault(branch, []).append(commit)
        return commit


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        # ---- plumbing

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload=None, headers: dict | None = None) -> None:
            data = json.dumps(payload if payload is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            headers = {"X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, {"error": message}, headers)

        def _user(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return hub.tokens.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None

        def _dispatch(self, method: str) -> None:
            path = unquote(urlsplit(self.path).path)
            body = self._body()
            hub.requests.append((method, path))
            hub.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
            failure = hub._take_failure(path)
            if failure == "drop":  # close without a response, as a broken connection does
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if failure == "503":
                return self._error(503, "Service temporarily unavailable")
            if path not in PUBLIC_PATHS and not path.startswith("/lfs-objects/") and self._user() is None:
                return self._error(401, "Invalid credentials in Authorization header")
            for pattern, handler in ROUTES:
                match = re.fullmatch(pattern, f"{method} {path}")
                if match:
                    return handler(self, body, *match.groups())
            self._error(404, f"no route for {method} {path}")

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def do_PUT(self):
            self._dispatch("PUT")

        # ---- endpoints

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
            return repo

        def create_repo(self, body: bytes) -> None:
            payload = json.loads(body)
            owner = payload.get("organization") or self._user()
            if owner != self._user():
                return self._error(403, f"You don't have the rights to create a model under {owner}")
            repo_id = f"{owner}/{payload['name']}"
            if repo_id in hub.repos:  # the Hub answers 409 with the repo's url, which exist_ok relies on
                message = "You already created this model repo"
                return self._send(409, {"error": message, "url": f"{hub.url}/{repo_id}"}, {"X-Error-Message": message})
            repo = hub.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
            # Like the Hub: a new repo starts with one commit holding .gitattributes.
            hub._new_commit(repo, "main", {".gitattributes": _entry(".gitattributes", GITATTRIBUTES)})
            self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def agent_harnesses(self, body: bytes) -> None:  # the client's user-agent registry: keep it local
            self._send(200, {"standardEnvVars": [], "harnesses": {}})

        def validate_yaml(self, body: bytes) -> None:
            content = json.loads(body)["content"]
            match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
            errors = []
            try:
                metadata = yaml.safe_load(match.group(1)) if match else {}
                if not isinstance(metadata, dict):
                    errors.append({"message": "metadata is not a mapping"})
            except yaml.YAMLError as err:
                metadata, errors = None, [{"message": f"invalid YAML: {err}"}]
            hub.yaml_validated.append(metadata)
            self._send(400 if errors else 200, {"errors": errors, "warnings": []})

        def repo_info(self, body: bytes, repo_id: str, revision: str | None = None) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            head = repo.head(revision or "main")
            if head is None:
                return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            siblings = [{"rfilename": path} for path in sorted(head["files"])]
            self._send(200, {"id": repo_id, "modelId": repo_id, "sha": head["sha"], "private": repo.private,
                             "siblings": siblings})

        def create_branch(self, body: bytes, repo_id: str, branch: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            if branch in repo.branches:
                return self._error(409, "Reference already exists")
            repo.branches[branch] = [dict(repo.head("main"))]
            self._send(200, {})

        def tree(self, body: bytes, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            head = repo.head(revision)
            if head is None:
                return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            self._send(200, [{"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
                             for path, entry in sorted(head["files"].items())])

        def preupload(self, body: bytes, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            head = repo.head(revision) or {"files": {}}
            files = []
            for item in json.loads(body)["files"]:
                mode = "lfs" if _is_lfs(item["path"], item["size"]) else "regular"
                remote = head["files"].get(item["path"])
                oid = None if remote is None else (remote["sha256"] if remote["lfs"] else remote["oid"])
                files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            self._send(200, {"files": files, "commitOid": head.get("sha")})

        def lfs_batch(self, body: bytes, repo_id: str) -> None:
            if self._repo(repo_id) is None:
                return
            objects = []
            for obj in json.loads(body)["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-objects/{obj['oid']}", "header": {}}}
                objects.append(entry)
            self._send(200, {"transfer": "basic", "objects": objects})

        def lfs_put(self, body: bytes, oid: str) -> None:
            if hashlib.sha256(body).hexdigest() != oid:
                return self._error(400, "sha256 of the uploaded content does not match the oid")
            hub.lfs[oid] = body
            self._send(200, {})

        def commit(self, body: bytes, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            hub.commit_payloads.append(lines)
            if not lines or lines[0]["key"] != "header":
                return self._error(400, "first NDJSON line must be the header")
            files = dict((repo.head(revision) or {"files": {}})["files"])
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = _entry(value["path"], base64.b64decode(value["content"]))
                elif line["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        return self._error(400, f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = {"lfs": True, "sha256": value["oid"], "size": value["size"],
                                            "oid": git_blob_sha1(_pointer(value["oid"], value["size"]))}
                elif line["key"] in ("deletedFile", "deletedFolder"):
                    files.pop(value["path"], None)
                else:
                    return self._error(400, f"unknown operation {line['key']}")
            commit = hub._new_commit(repo, revision, files)
            self._send(200, {"success": True, "commitOid": commit["sha"],
                             "commitUrl": f"{hub.url}/{repo_id}/commit/{commit['sha']}"})

    repo = r"([^/]+/[^/]+)"
    ROUTES = (
        (r"POST /api/repos/create", Handler.create_repo),
        (r"POST /api/validate-yaml", Handler.validate_yaml),
        (r"GET /api/agent-harnesses", Handler.agent_harnesses),
        (rf"GET /api/models/{repo}/revision/([^/]+)", Handler.repo_info),
        (rf"GET /api/models/{repo}", Handler.repo_info),
        (rf"POST /api/models/{repo}/branch/([^/]+)", Handler.create_branch),
        (rf"GET /api/models/{repo}/tree/([^/]+)", Handler.tree),
        (rf"POST /api/models/{repo}/preupload/([^/]+)", Handler.preupload),
        (rf"POST /{repo}\.git/info/lfs/objects/batch", Handler.lfs_batch),
        (r"PUT /lfs-objects/([0-9a-f]{64})", Handler.lfs_put),
        (rf"POST /api/models/{repo}/commit/([^/]+)", Handler.commit),
    )
    return Handler


def _is_lfs(path: str, size: int) -> bool:
    return size >= LFS_MIN_SIZE or any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in LFS_PATTERNS)


def _pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _entry(path: str, content: bytes) -> dict:
    return {"lfs": False, "content": content, "size": len(content), "oid": git_blob_sha1(content),
            "sha256": hashlib.sha256(content).hexdigest()}
