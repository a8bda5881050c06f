"""Starting a real server process for a test (the site, `streamlit run`): a free local port,
wait until its health route answers, stop it afterwards, and never let a traceback in its log
pass unnoticed."""

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether a Streamlit server at `url` answers its health route."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return bool(response.read().decode().strip() == "ok")
    except OSError:
        return False


@contextmanager
def serving(command: Sequence[str], *, port: int, cwd: Path, env: Mapping[str, str], log_path: Path,
            start_timeout: float = 30, check_log: bool = True) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `command` (listening on 127.0.0.1:`port`); yields its URL and process. Fails the test
    when it does not come up, or (`check_log`) when its log shows a traceback: a page failed
    even if the visitor saw a tidy message."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                   text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[0]} did not come up (exit {process.poll()}):\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if check_log:
        assert "Traceback" not in log_path.read_text(), log_path.read_text()
