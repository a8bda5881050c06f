"""docker-compose.yml, .env.example, .dockerignore and deploy/Dockerfile.

There is no Docker daemon where the tests run, so these read the files: the compose file is
parsed as YAML the way compose reads it (anchors and merge keys resolved), and every command it
runs is parsed by the real `signalproof` argument parser, so a renamed subcommand fails here.
"""

import http.server
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml

from shared.config import Config
from signalproof import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("migrate", "worker", "site", "site-replica")
REPLICA_SERVICES = {"postgres-replica-init", "postgres-replica", "site-replica"}  # the `replica` profile
HBA = ROOT / "deploy" / "postgres" / "pg_hba.conf"
AFTER_MIGRATE = {"postgres": {"condition": "service_healthy"},
                 "migrate": {"condition": "service_completed_successfully"}}
# `${NAME:?message}`: compose refuses to run while NAME is unset or empty.
REQUIRED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")
SECRET_WORDS = ("PASSWORD", "HASH", "SECRET", "TOKEN")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return env


def parse_command(argv: list[str]) -> Any:
    """The `signalproof` command line as the real CLI parses it (SystemExit if it does not exist)."""
    assert argv[0] == "signalproof", argv
    args, extra = cli.build_parser().parse_known_args(argv[1:])
    assert not extra or args.run is cli.cmd_site, f"unknown arguments {extra} in {argv}"  # site passes them on
    return args


# --- the services ------------------------------------------------------------------------


def test_the_stack_is_postgres_migrate_worker_and_site(services: dict[str, Any]) -> None:
    by_default = {name for name, service in services.items() if not service.get("profiles")}
    assert by_default == {"postgres", "migrate", "worker", "site"}
    assert {name: services[name]["profiles"] for name in set(services) - by_default} == {
        name: ["replica"] for name in REPLICA_SERVICES}


def test_postgres_keeps_its_data_in_a_named_volume_and_is_not_published(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pgdata" in yaml.safe_load(COMPOSE.read_text())["volumes"]
    assert "ports" not in postgres  # only the other containers reach it
    assert postgres["restart"] == "unless-stopped"


def test_postgres_is_healthy_only_when_it_answers_over_tcp(services: dict[str, Any]) -> None:
    # The image's first-run initialisation serves the Unix socket only: a socket check lies.
    check = services["postgres"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"]
    assert check[check.index("-h") + 1] == "127.0.0.1"
    assert check[check.index("-U") + 1] == services["postgres"]["environment"]["POSTGRES_USER"]


def test_the_apps_share_one_image_built_from_deploy_dockerfile(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert services[name]["image"] == services["migrate"]["image"]


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert parse_command(migrate["command"]).run is cli.cmd_db_upgrade
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", ["worker", "site", "site-replica"])
def test_worker_and_site_start_after_a_successful_migration(services: dict[str, Any], name: str) -> None:
    assert AFTER_MIGRATE.items() <= services[name]["depends_on"].items()
    assert services[name]["restart"] == "unless-stopped"


def test_the_worker_runs_forever_and_is_checked_through_its_heartbeat(services: dict[str, Any]) -> None:
    worker = services["worker"]
    args = parse_command(worker["command"])
    assert args.run is cli.cmd_worker and not args.once
    check = worker["healthcheck"]["test"]
    assert check[0] == "CMD"
    check_args = parse_command(check[1:])
    assert check_args.run is cli.cmd_worker and check_args.check


def test_the_worker_check_and_the_site_judge_staleness_by_the_same_limit(services: dict[str, Any]) -> None:
    """One definition of "stale" (shared.heartbeat.stale_after), fed the same setting: the site
    must not call a worker fresh that its healthcheck calls stale, or the other way round."""
    from shared.heartbeat import stale_after

    limits = {name: environment(services[name]).get("SIGNALPROOF_WORKER_STALE_AFTER_SECONDS")
              for name in ("worker", "site", "site-replica")}
    assert limits["worker"] == limits["site"] == limits["site-replica"] is not None, limits
    assert stale_after(30, float(limits["worker"])) == 600


def test_the_site_serves_port_8501_on_every_interface(services: dict[str, Any]) -> None:
    site = services["site"]
    command = site["command"]
    assert parse_command(command).run is cli.cmd_site
    assert command[command.index("--server.port") + 1] == "8501"
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    assert "8501:8501" in site["ports"]


def test_the_site_healthcheck_asks_streamlit_with_python_not_curl(services: dict[str, Any]) -> None:
    check = services["site"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]  # the slim image has no curl
    assert "http://127.0.0.1:8501/_stcore/health" in check[3]


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_site_healthcheck_command_passes_and_fails_for_real(services: dict[str, Any], health_server: int) -> None:
    """Runs the healthcheck's Python line (on another port): 0 when healthy, non-zero when down."""
    code = services["site"]["healthcheck"]["test"][3]

    def run(port: int) -> int:
        return subprocess.run([sys.executable, "-c", code.replace(":8501/", f":{port}/")],
                              capture_output=True, timeout=30).returncode

    assert run(health_server) == 0
    assert run(free_port()) != 0


# --- secrets -----------------------------------------------------------------------------


def test_the_secrets_are_required_from_the_environment(services: dict[str, Any]) -> None:
    owner_hash = environment(services["site"])["SIGNALPROOF_OWNER_PASSWORD_HASH"]
    assert REQUIRED.fullmatch(owner_hash)["name"] == "SIGNALPROOF_OWNER_PASSWORD_HASH"
    assert REQUIRED.fullmatch(environment(services["postgres"])["POSTGRES_PASSWORD"])["name"] == "POSTGRES_PASSWORD"
    for name in (*APP_SERVICES, "postgres-replica-init"):  # libpq reads the database password from PGPASSWORD
        assert REQUIRED.fullmatch(environment(services[name])["PGPASSWORD"])["name"] == "POSTGRES_PASSWORD"


def test_only_the_site_gets_the_owner_hash(services: dict[str, Any]) -> None:
    holders = [name for name, service in services.items() if "SIGNALPROOF_OWNER_PASSWORD_HASH" in environment(service)]
    assert holders == ["site", "site-replica"]


def test_no_secret_is_written_in_the_compose_file(services: dict[str, Any]) -> None:
    assert "$argon2" not in COMPOSE.read_text()
    for name, service in services.items():
        for key, value in environment(service).items():
            if any(word in key for word in SECRET_WORDS):
                assert REQUIRED.fullmatch(value), f"{name}: {key} must come from the environment"
            if "://" in value:
                assert urlsplit(value).password is None, f"{name}: {key} carries a password"


def test_every_signalproof_variable_is_a_setting_the_program_reads(services: dict[str, Any]) -> None:
    """Config ignores unknown variables, so a misspelt or renamed one would pass unnoticed."""
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("SIGNALPROOF_"):
                assert key.removeprefix("SIGNALPROOF_").lower() in Config.model_fields, f"{name}: {key}"


def test_the_database_url_names_the_postgres_service(services: dict[str, Any]) -> None:
    url = urlsplit(environment(services["worker"])["SIGNALPROOF_DATABASE_URL"])
    postgres_env = environment(services["postgres"])
    assert url.scheme == "postgresql+psycopg"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.path == "/" + postgres_env["POSTGRES_DB"]


def test_env_example_documents_every_variable_compose_reads_and_ships_no_value() -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    assignments = dict(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert used == {"POSTGRES_PASSWORD", "SIGNALPROOF_OWNER_PASSWORD_HASH"}
    assert used <= set(assignments)
    assert all(value == "" for value in assignments.values()), "the example must not ship a secret"


# --- the `replica` profile ---------------------------------------------------------------


def test_the_replica_site_reads_the_replica_and_writes_the_primary(services: dict[str, Any]) -> None:
    site, replica_site = services["site"], services["site-replica"]
    env = environment(replica_site)
    replica = urlsplit(env["SIGNALPROOF_SITE_DATABASE_URL"])
    assert (replica.scheme, replica.hostname, replica.port) == ("postgresql+psycopg", "postgres-replica", 5432)
    assert (replica.username, replica.path) == ("signalproof", "/signalproof")
    assert env["SIGNALPROOF_DATABASE_URL"] == environment(site)["SIGNALPROOF_DATABASE_URL"]  # the owner's page
    assert Config(**{key.removeprefix("SIGNALPROOF_").lower(): value for key, value in env.items()
                     if key in ("SIGNALPROOF_DATABASE_URL", "SIGNALPROOF_SITE_DATABASE_URL")}).site_read_url == (
        env["SIGNALPROOF_SITE_DATABASE_URL"])
    assert "SIGNALPROOF_SITE_DATABASE_URL" not in environment(site)
    assert (replica_site["command"], replica_site["healthcheck"]) == (site["command"], site["healthcheck"])
    assert replica_site["ports"] == ["8502:8501"]
    assert replica_site["depends_on"]["postgres-replica"] == {"condition": "service_healthy"}


def test_the_replica_is_a_hot_standby_seeded_once_from_the_migrated_primary(services: dict[str, Any]) -> None:
    init, replica, primary = services["postgres-replica-init"], services["postgres-replica"], services["postgres"]
    assert init["image"] == replica["image"] == primary["image"]
    assert init["depends_on"] == AFTER_MIGRATE and init["restart"] == "no"
    assert init["user"] == "postgres"  # the server's files belong to the image's postgres user
    assert replica["depends_on"] == {"postgres-replica-init": {"condition": "service_completed_successfully"}}
    assert init["volumes"] == replica["volumes"] == ["pgdata-replica:/var/lib/postgresql/data"]
    assert "pgdata-replica" in yaml.safe_load(COMPOSE.read_text())["volumes"]
    assert "ports" not in replica
    assert replica["command"][0] == "postgres" and "hot_standby=on" in replica["command"]
    assert replica["healthcheck"]["test"] == primary["healthcheck"]["test"]


def test_the_primary_accepts_password_replication_connections(services: dict[str, Any]) -> None:
    primary = services["postgres"]
    command = primary["command"]
    hba_file = command[command.index("-c") + 1].removeprefix("hba_file=")
    assert f"./deploy/postgres/pg_hba.conf:{hba_file}:ro" in primary["volumes"]
    rules = [line.split() for line in HBA.read_text().splitlines() if line.strip() and not line.startswith("#")]
    # The image's own rules (trust from inside the container, a password from anywhere else) ...
    assert ["host", "all", "all", "all", "scram-sha-256"] in rules
    assert ["local", "all", "all", "trust"] in rules
    # ... and replication from the other containers, with the password too; nothing without one.
    assert ["host", "replication", "all", "all", "scram-sha-256"] in rules
    assert all(rule[-1] == "scram-sha-256" for rule in rules if rule[0] == "host" and rule[3] == "all")


@pytest.mark.postgres
def test_the_replica_init_script_copies_a_running_primary_once(services: dict[str, Any],
                                                              hot_standby: Any, tmp_path: Path) -> None:
    """The init service's script, run here against a real primary (the throw-away cluster of
    tests/conftest.py) with the environment compose gives it, pointed at that cluster."""
    from conftest import postgres_binaries

    init = services["postgres-replica-init"]
    assert init["entrypoint"] == ["/bin/sh", "-ec"]
    script = init["command"][0].replace("$$", "$")  # compose's escape for a literal `$`
    primary = hot_standby[0]
    env = {**environment(init), "PGHOST": "127.0.0.1", "PGPORT": str(primary.url.port), "PGUSER": "postgres",
           "PGDATABASE": "postgres", "PGPASSWORD": "unused (trust)", "PGDATA": str(tmp_path / "replica"),
           "PATH": f"{postgres_binaries()}:/usr/bin:/bin"}
    slot = env["REPLICATION_SLOT"]

    def run() -> str:
        result = subprocess.run(["/bin/sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        run()
        data = tmp_path / "replica"
        assert (data / "PG_VERSION").is_file() and (data / "standby.signal").is_file()
        settings = (data / "postgresql.auto.conf").read_text()
        assert f"primary_slot_name = '{slot}'" in settings
        assert "host=127.0.0.1" in settings and f"port={primary.url.port}" in settings
        assert run().strip() == "the replica is set up already"
    finally:
        with primary.connect() as connection:
            connection.execute(sa.text("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                       "WHERE slot_name = :slot"), {"slot": slot})


# --- the image ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")]


def test_the_image_is_slim_python_312_running_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert [args for op, args in instructions if op == "FROM"] == ["python:3.12-slim"]
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8501") in instructions


def test_the_image_runs_the_site_by_default() -> None:
    cmd = [args for op, args in dockerfile_instructions() if op == "CMD"]
    assert len(cmd) == 1
    assert parse_command(yaml.safe_load(cmd[0])).run is cli.cmd_site  # exec form is a JSON list


def packages() -> set[str]:
    """The top-level packages pyproject.toml installs, and the checkout directories it maps into
    them (site/ → signalproof/site, migrations/ → shared/migrations)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name for name in setuptools["packages"] if "." not in name} | set(setuptools["package-dir"].values())


def test_the_image_copies_every_package_and_installs_it_as_a_regular_package() -> None:
    """The site's pages and the migrations travel inside the packages (`pip install .`, not -e),
    so the image copies every package and the directories mapped into them, installs, and keeps
    no source tree."""
    instructions = dockerfile_instructions()
    copied = {args.split()[0].rstrip("/") for op, args in instructions if op == "COPY"}
    assert packages() | {"site", "migrations", "pyproject.toml", "README.md"} <= copied
    installs = [args for op, args in instructions if op == "RUN" and "pip install" in args and "--no-deps ." in args]
    assert len(installs) == 1 and " -e" not in installs[0]
    assert "rm -rf /tmp/src" in installs[0]


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build() -> None:
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".env", ".venv", "var", ".git", "tests", "**/__pycache__"} <= ignored
