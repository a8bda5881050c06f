"""What a user gets wrong reaches them as one line on stderr and exit status 2, never a
traceback (the real CLI in a subprocess, configured by environment like a user's shell)."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Cli
from shared.database import upgrade


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("signalproof: "), result.stderr
    return result.stderr.strip()


@pytest.fixture
def user(tmp_path: Path) -> Cli:
    """A CLI on a SQLite file that does not exist yet, and an exchange nobody listens on."""
    return Cli(f"sqlite:///{tmp_path / 'var' / 'signalproof.db'}", "http://127.0.0.1:9", tmp_path)


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("SIGNALPROOF_HTTP_RETRIES", "abc", "SIGNALPROOF_HTTP_RETRIES: Input should be a valid integer"),
    ("SIGNALPROOF_HTTP_RETRIES", "-1", "SIGNALPROOF_HTTP_RETRIES: must be 0 or more (got -1)"),
    ("SIGNALPROOF_HTTP_BACKOFF_SECONDS", "-0.5", "SIGNALPROOF_HTTP_BACKOFF_SECONDS: must be 0 or more"),
    ("SIGNALPROOF_HTTP_TIMEOUT_SECONDS", "0", "SIGNALPROOF_HTTP_TIMEOUT_SECONDS: must be greater than 0"),
    ("SIGNALPROOF_MONITOR_INTERVAL_SECONDS", "-30", "SIGNALPROOF_MONITOR_INTERVAL_SECONDS: must be greater than 0"),
    ("SIGNALPROOF_WORKER_STALE_AFTER_SECONDS", "0", "SIGNALPROOF_WORKER_STALE_AFTER_SECONDS: must be greater than 0"),
    ("SIGNALPROOF_OWNER_IDLE_MINUTES", "-5", "SIGNALPROOF_OWNER_IDLE_MINUTES: must be greater than 0"),
    ("SIGNALPROOF_DEMO", "maybe", "SIGNALPROOF_DEMO: Input should be a valid boolean"),
])
@pytest.mark.parametrize("command", [("stats",), ("worker", "--once"), ("db", "upgrade")])
def test_a_bad_setting_is_one_line_naming_it(user: Cli, tmp_path: Path, variable: str, value: str, says: str,
                                            command: tuple[str, ...]) -> None:
    user.env[variable] = value
    assert says in one_line_error(user(*command, check=False))
    assert not (tmp_path / "var").exists()  # refused before anything was touched


def test_a_database_url_with_an_unknown_scheme_is_one_line(user: Cli) -> None:
    user.env["SIGNALPROOF_DATABASE_URL"] = "mysq://localhost/x"
    assert one_line_error(user("stats", check=False)).startswith("signalproof: SIGNALPROOF_DATABASE_URL: ")


PRIMARY = "postgresql+psycopg://signalproof@127.0.0.1:9/signalproof"  # nothing listens: refused before it is tried


@pytest.mark.parametrize("value", ["not a url", "sqlite:///var/replica.db", "mysql://reader:SECRET@replica/db",
                                   "https://reader:SECRET@replica/"])
def test_a_read_replica_url_that_is_not_postgresql_is_one_line_without_the_url(user: Cli, value: str) -> None:
    user.env.update(SIGNALPROOF_DATABASE_URL=PRIMARY, SIGNALPROOF_SITE_DATABASE_URL=value)
    line = one_line_error(user("site", check=False))
    assert line.startswith("signalproof: SIGNALPROOF_SITE_DATABASE_URL: not a PostgreSQL URL (expected "), line
    assert "SECRET" not in line and value not in line


def test_a_read_replica_of_a_sqlite_file_is_refused(user: Cli) -> None:
    user.env["SIGNALPROOF_SITE_DATABASE_URL"] = "postgres://reader@replica/signalproof"
    assert one_line_error(user("stats", check=False)) == (
        "signalproof: SIGNALPROOF_SITE_DATABASE_URL: a read replica needs SIGNALPROOF_DATABASE_URL on PostgreSQL too "
        "(unset it to read the database the worker writes)")


def test_an_empty_read_replica_url_means_none(user: Cli, tmp_path: Path) -> None:
    user.env["SIGNALPROOF_SITE_DATABASE_URL"] = " "
    assert one_line_error(user("stats", check=False)).endswith("does not exist: run `signalproof db upgrade` first")


@pytest.mark.postgres
def test_the_site_does_not_start_on_a_read_replica_it_cannot_read(postgres_databases: Any, tmp_path: Path) -> None:
    """`signalproof site` checks the replica as it checks the primary: it answers and holds the schema."""
    primary = postgres_databases.create()
    upgrade(primary)
    user = Cli(primary, "http://127.0.0.1:9", tmp_path)
    empty = postgres_databases.create()  # reachable, but no replica of the primary: no schema
    user.env["SIGNALPROOF_SITE_DATABASE_URL"] = empty
    assert one_line_error(user("site", check=False)) == ("signalproof: SIGNALPROOF_SITE_DATABASE_URL: the database "
                                                         "has no signalproof schema yet: run `signalproof db upgrade` "
                                                         "first")
    user.env["SIGNALPROOF_SITE_DATABASE_URL"] = sa.engine.make_url(empty).set(
        database="no_such_database").render_as_string(hide_password=False)
    line = one_line_error(user("site", check=False))
    assert line.startswith("signalproof: SIGNALPROOF_SITE_DATABASE_URL: cannot open the database: "), line


@pytest.mark.parametrize("command", [("stats",), ("stats", "--json"), ("trades", "export"), ("signals", "export"),
                                     ("settings", "show"), ("worker", "--check"), ("settings", "set", "paused", "true")])
def test_a_missing_sqlite_file_is_not_created(user: Cli, tmp_path: Path, command: tuple[str, ...]) -> None:
    line = one_line_error(user(*command, check=False))
    assert line == (f"signalproof: cannot open the database: {tmp_path / 'var' / 'signalproof.db'} does not exist: "
                    "run `signalproof db upgrade` first")
    assert not (tmp_path / "var").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_plain_postgres_urls_use_psycopg(postgres_url: str, tmp_path: Path, scheme: str) -> None:
    """What hosting providers hand out: `postgres://…` / `postgresql://…` without a driver."""
    plain = sa.engine.make_url(postgres_url).set(drivername=scheme).render_as_string(hide_password=False)
    user = Cli(plain, "http://127.0.0.1:9", tmp_path)
    assert user("db", "upgrade").stdout == "database schema is up to date\n"
    assert '"closed_trades": 0' in user("stats", "--json").stdout


def test_version(user: Cli) -> None:
    result = user("--version")
    assert re.fullmatch(r"signalproof \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def hash_password(user: Cli, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(user.command("hash-password"), input=stdin, cwd=user.cwd, env=user.env,
                          capture_output=True, text=True, timeout=60)


def test_hash_password_reads_standard_input_without_a_terminal(user: Cli) -> None:
    from argon2 import PasswordHasher

    result = hash_password(user, "correct horse\n")
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"SIGNALPROOF_OWNER_PASSWORD_HASH='(\$argon2id\$[^']+)'\n", result.stdout)
    assert match, result.stdout
    assert PasswordHasher().verify(match.group(1), "correct horse")
    # The printed line is ready to paste: a shell reads it back as the hash itself.
    echoed = subprocess.run(["sh", "-c", f"{result.stdout.strip()}; printf %s \"$SIGNALPROOF_OWNER_PASSWORD_HASH\""],
                            capture_output=True, text=True, check=True).stdout
    assert echoed == match.group(1)


@pytest.mark.parametrize("stdin", ["short\n", "", "\n"])
def test_hash_password_refuses_a_short_password_in_one_line(user: Cli, stdin: str) -> None:
    assert "use at least 8 characters" in one_line_error(hash_password(user, stdin))


def test_python_dash_m_and_the_console_script_agree(user: Cli) -> None:
    script = Path(sys.executable).with_name("signalproof")
    if not script.exists():
        pytest.skip("the console script is not installed beside this interpreter")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=user.env)
    assert result.stdout == user("--version").stdout
