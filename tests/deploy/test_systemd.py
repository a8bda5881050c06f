"""deploy/systemd: the worker and site units and their example environment file.

The units are read with a small parser (systemd keys may repeat, which configparser does not
model) and, where `systemd-analyze` exists, checked by systemd itself. `systemd-analyze verify`
insists that ExecStart binaries exist, so it checks copies pointing at this venv's
`signalproof`; it does not look up User= (no `signalproof` user is needed on the test machine).
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import sqlite_path
from signalproof import cli

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = ("signalproof-worker.service", "signalproof-site.service")
INSTALLED = "/opt/signalproof/.venv/bin/signalproof"

Unit = dict[str, dict[str, list[str]]]

BOTH = {
    "Restart": "on-failure",
    "User": "signalproof",
    "Group": "signalproof",
    "EnvironmentFile": "/etc/signalproof/signalproof.env",
    "StateDirectory": "signalproof",
    "WorkingDirectory": "/var/lib/signalproof",
    "KillSignal": "SIGTERM",
    # Hardening that Python, psycopg, requests and Streamlit live with.
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
}


def parse_unit(text: str) -> Unit:
    """{section: {key: [values in order]}} from a unit file."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def load(name: str) -> Unit:
    return parse_unit((SYSTEMD / name).read_text())


def value(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values and len(values) == 1, f"[{section}] {key}= should be set once, got {values}"
    return values[0]


def exec_args(unit: Unit, key: str = "ExecStart") -> list[str]:
    argv = shlex.split(value(unit, "Service", key))
    assert argv[0] == INSTALLED, argv
    return argv[1:]


def seconds(text: str) -> float:
    """A systemd time span such as `120`, `90s` or `2min`."""
    number, unit = re.fullmatch(r"(\d+)\s*(s|sec|min|)", text).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit == "min" else 1)


# --- what the units say ------------------------------------------------------------------


def test_the_worker_is_a_notify_service_with_a_watchdog() -> None:
    worker = load("signalproof-worker.service")
    assert value(worker, "Service", "Type") == "notify"
    assert value(worker, "Service", "NotifyAccess") == "main"  # only the worker process itself
    assert 30 < seconds(value(worker, "Service", "WatchdogSec")) <= 600
    args = cli.build_parser().parse_args(exec_args(worker))
    assert args.run is cli.cmd_worker and not args.once and not args.check
    assert seconds(value(worker, "Service", "TimeoutStopSec")) >= 30  # time to finish the current job


def test_the_worker_migrates_the_schema_before_it_starts() -> None:
    worker = load("signalproof-worker.service")
    assert cli.build_parser().parse_args(exec_args(worker, "ExecStartPre")).run is cli.cmd_db_upgrade


def test_the_site_is_a_simple_service_on_port_8501() -> None:
    site = load("signalproof-site.service")
    assert value(site, "Service", "Type") == "simple"  # Streamlit does not speak sd_notify
    assert "WatchdogSec" not in site["Service"]
    argv = exec_args(site)
    args, _streamlit_args = cli.build_parser().parse_known_args(argv)
    assert args.run is cli.cmd_site
    assert argv[argv.index("--server.port") + 1] == "8501"


@pytest.mark.parametrize("name", UNITS)
def test_both_units_run_as_the_service_user_with_hardening(name: str) -> None:
    service = load(name)["Service"]
    for key, expected in BOTH.items():
        assert service.get(key) == [expected], key
    assert "MemoryDenyWriteExecute" not in service  # can break cffi (argon2) callbacks
    assert seconds(service["RestartSec"][0]) > 0


@pytest.mark.parametrize("name", UNITS)
def test_both_units_wait_for_the_network_and_a_local_postgres_without_requiring_it(name: str) -> None:
    unit = load(name)
    after = " ".join(unit["Unit"]["After"]).split()
    assert {"network-online.target", "postgresql.service"} <= set(after)
    assert "network-online.target" in unit["Unit"]["Wants"]
    assert "Requires" not in unit["Unit"]  # the database may be remote
    assert value(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_example_environment_keeps_sqlite_in_the_state_directory() -> None:
    text = (SYSTEMD / "signalproof.env.example").read_text()
    settings = dict(re.findall(r"^([A-Z_]+)=(.*)$", text, flags=re.MULTILINE))
    state = Path("/var/lib") / value(load("signalproof-worker.service"), "Service", "StateDirectory")
    assert sqlite_path(settings["SIGNALPROOF_DATABASE_URL"]).parent == state  # type: ignore[union-attr]
    assert "#SIGNALPROOF_DATABASE_URL=postgresql+psycopg://" in text
    assert "SIGNALPROOF_OWNER_PASSWORD_HASH" in text and "SIGNALPROOF_OWNER_PASSWORD_HASH" not in settings


# --- what systemd says -------------------------------------------------------------------


def installed_copies(directory: Path, *, break_it: bool = False) -> list[Path]:
    """The units with ExecStart* pointing at this venv's `signalproof` (verify needs it to exist)."""
    signalproof = Path(sys.executable).parent / "signalproof"
    if not signalproof.is_file():
        pytest.skip(f"no signalproof command beside {sys.executable}")
    copies = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace(INSTALLED, str(signalproof))
        if break_it:
            text = text.replace("ProtectSystem=strict", "ProtectSystem=stricter")
        (directory / name).write_text(text)
        copies.append(directory / name)
    return copies


def verify(units: list[Path]) -> tuple[int, list[str]]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run([analyze, "verify", *map(str, units)], cwd=units[0].parent,
                            capture_output=True, text=True, timeout=120)
    # Complaints about the host's own units are not ours: keep the lines naming our files.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if any(name in line for name in UNITS)]
    return result.returncode, ours


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    returncode, complaints = verify(installed_copies(tmp_path))
    assert complaints == []
    assert returncode == 0


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above means something: a bad value in our unit is reported and caught."""
    _returncode, complaints = verify(installed_copies(tmp_path, break_it=True))
    assert any("protect system value" in line and "stricter" in line for line in complaints), complaints
