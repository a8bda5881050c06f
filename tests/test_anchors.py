"""The two example anchors (examples/anchors/) run for real: a git repository with a remote gets
the checkpoint committed and pushed; a local webhook receives it as a chat message."""

import http.server
import json
import subprocess
import threading
from pathlib import Path

from shared import signing
from shared.ledger import canonical
from datetime import datetime, timezone
from worker.checkpoints import run_anchor

ANCHORS = Path(__file__).resolve().parent.parent / "examples" / "anchors"


def checkpoint_line() -> bytes:
    keys = signing.generate()
    point = signing.checkpoint(42, "ab" * 32, datetime(2024, 5, 1, tzinfo=timezone.utc))
    return canonical({**point, "signature": signing.sign(point, keys.private), "public_key": keys.public}) + b"\n"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_git_commit_anchor_commits_and_pushes(tmp_path: Path) -> None:
    remote, repo = tmp_path / "remote.git", tmp_path / "heads"
    git("init", "--quiet", "--bare", str(remote), cwd=tmp_path)
    git("init", "--quiet", str(repo), cwd=tmp_path)
    git("config", "user.email", "bot@example.org", cwd=repo)
    git("config", "user.name", "signalproof", cwd=repo)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("checkout", "--quiet", "-b", "main", cwd=repo)
    git("commit", "--quiet", "--allow-empty", "-m", "start", cwd=repo)
    git("push", "--quiet", "-u", "origin", "main", cwd=repo)
    line = checkpoint_line()
    status, detail = run_anchor(f"{ANCHORS / 'git-commit.sh'} {repo}", line, timeout=30)
    assert (status, detail) == ("ok", "exit 0: committed and pushed seq 42")
    assert git("show", "main:checkpoints.jsonl", cwd=remote).encode() == line


def test_post_to_chat_anchor_posts_the_checkpoint(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    received: list[dict[str, str]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SIGNALPROOF_ANCHOR_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
        line = checkpoint_line()
        assert run_anchor(str(ANCHORS / "post-to-chat.sh"), line, timeout=30) == ("ok", "exit 0: posted (HTTP 204)")
        text = received[0]["text"]
        assert json.loads(text.removeprefix("signalproof checkpoint: ")) == json.loads(line)
        monkeypatch.delenv("SIGNALPROOF_ANCHOR_WEBHOOK_URL")
        status, detail = run_anchor(str(ANCHORS / "post-to-chat.sh"), line, timeout=30)
        assert status == "failed" and "SIGNALPROOF_ANCHOR_WEBHOOK_URL" in detail
    finally:
        server.shutdown()
        server.server_close()
