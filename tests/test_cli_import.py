"""`signalproof signals import` through the real CLI, on SQLite and PostgreSQL: a file imported by
mistake is refused whole (exit 2, one line, nothing stored); a long import commits in batches,
so a concurrent `settings set` gets its turn instead of "database is locked"."""

import base64
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Cli
from shared.database import make_engine
from shared.signals import SIGNAL_FIELDS

HEADER = ",".join(SIGNAL_FIELDS)
VALID = "s1,2018-01-20T12:00:00Z,ETHBTC,LONG,SPOT,,0.095,0.085,,,,"
INVALID = "s2,2018-01-20T12:00:00Z,ETHBTC,SIDEWAYS,SPOT,,0.095,0.085,,,,"
PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" * 20
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def stored_signals(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM signal")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("content", "reason"), [
    pytest.param(PASSWD, "not a signal file: the first line must be JSON or a CSV header", id="/etc/passwd"),
    pytest.param(PNG, "not UTF-8 text", id="a PNG"),
    pytest.param("name,email,city\nann,ann@example.com,Oslo\nbob,bob@example.com,Rome\n",
                 "not a signal file", id="a CSV of something else"),
    pytest.param("foo,bar\n1,2\n", "not a signal file", id="unknown columns only"),
    pytest.param(f"{HEADER}\n{INVALID}\n{INVALID.replace('s2', 's3')}\n",
                 "not one of its 2 record(s) is a valid signal (line 2: side must be LONG", id="no valid row"),
    pytest.param('{"name": "ann"}\n{"name": "bob"}\n', "not one of its 2 record(s) is a valid signal (line 1: id is required",
                 id="JSON lines of something else"),
])
def test_a_wrong_file_is_refused_whole(cli: Cli, database_url: str, tmp_path: Path, content: str | bytes,
                                       reason: str) -> None:
    path = tmp_path / "wrong"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli("signals", "import", str(path), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert reason in result.stderr and "Traceback" not in result.stderr
    assert stored_signals(database_url) == 0


def test_a_file_with_some_valid_rows_is_imported_with_its_rejections(cli: Cli, database_url: str,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(f"{HEADER}\n{VALID}\n{INVALID}\n")
    result = cli("signals", "import", str(path))
    assert result.stdout.splitlines() == ["accepted 1, rejected 1, duplicate 0",
                                          "  line 3: side must be LONG, SHORT, BUY or SELL (got 'SIDEWAYS')"]
    assert stored_signals(database_url) == 2


def test_a_long_import_lets_a_concurrent_settings_change_through(cli: Cli, database_url: str, database_kind: str,
                                                                 tmp_path: Path) -> None:
    if database_kind != "sqlite":
        pytest.skip("the write lock this is about is SQLite's")
    rows = 25_000
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "\n" + "".join(f"big-{n},2018-01-20T12:00:00Z,ETHBTC,LONG,SPOT,,0.095,0.085,,,,\n"
                                            for n in range(rows)))
    started = time.monotonic()
    importing = subprocess.Popen(cli.command("signals", "import", str(path)), cwd=cli.cwd, env=cli.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while stored_signals(database_url) == 0:  # the first batch is committed: the import is writing
            assert importing.poll() is None, importing.communicate()
            time.sleep(0.05)
        changed = cli("settings", "set", "stake_usd", "250", check=False)
        changed_at = time.monotonic()
        still_importing = importing.poll() is None
        out, err = importing.communicate(timeout=300)
    finally:
        if importing.poll() is None:
            importing.kill()
            importing.wait()
    assert changed.returncode == 0, changed.stderr
    assert still_importing, f"the import ended first ({changed_at - started:.1f} s): the test proves nothing"
    assert importing.returncode == 0, err
    assert out.splitlines()[0] == f"accepted {rows}, rejected 0, duplicate 0"
    assert stored_signals(database_url) == rows
    assert "250" in cli("settings", "show").stdout
    # Re-running the same import changes nothing: every row is a duplicate.
    assert cli("signals", "import", str(path)).stdout.splitlines()[0] == f"accepted 0, rejected 0, duplicate {rows}"
