"""systemd's notify protocol: worker/notify.py on real unix datagram sockets, and the real
worker process reporting READY, watchdog pings only while its ticks succeed, and STOPPING."""

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Cli
from fake_exchange import FakeExchange
from shared.database import make_engine, upgrade
from worker.notify import Systemd, socket_address, watchdog_seconds


class Listener:
    """The service manager's end: a bound AF_UNIX datagram socket that collects what arrives."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def close(self) -> None:
        self.sock.close()

    def receive(self, timeout: float) -> list[str] | None:
        """The lines of the next datagram, or None if nothing came within `timeout` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return None

    def collect(self, seconds: float) -> list[list[str]]:
        """Every datagram that arrives in the next `seconds`."""
        deadline = time.monotonic() + seconds
        messages = []
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None:
                messages.append(message)
        return messages

    def wait_for(self, line: str, timeout: float) -> list[list[str]]:
        """Datagrams up to and including the first that contains `line`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        seen: list[list[str]] = []
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None:
                seen.append(message)
                if line in message:
                    return seen
        raise AssertionError(f"no {line} within {timeout} s; got {seen}")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    path = str(tmp_path / "notify.sock")
    assert len(path) < 100, "AF_UNIX paths are limited to 108 bytes"
    listener = Listener(path)
    yield listener, path
    listener.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[Listener, str]]:
    name = f"signalproof-test-{uuid.uuid4().hex}"
    listener = Listener("\0" + name)
    yield listener, "@" + name
    listener.close()


# --- worker/notify.py ---------------------------------------------------------------------


def test_without_notify_socket_nothing_is_sent() -> None:
    systemd = Systemd.from_environment({})
    assert systemd == Systemd(address=None, watchdog_seconds=None)
    assert systemd.notify("READY=1") is False


def test_notify_sends_one_datagram_to_a_socket_path(listener: tuple[Listener, str]) -> None:
    receiver, path = listener
    systemd = Systemd.from_environment({"NOTIFY_SOCKET": path})
    assert systemd.notify("READY=1", "STATUS=running") is True
    assert receiver.receive(5) == ["READY=1", "STATUS=running"]


def test_notify_sends_to_an_abstract_socket(abstract_listener: tuple[Listener, str]) -> None:
    receiver, name = abstract_listener
    assert name.startswith("@")
    assert Systemd.from_environment({"NOTIFY_SOCKET": name}).notify("WATCHDOG=1") is True
    assert receiver.receive(5) == ["WATCHDOG=1"]


def test_a_socket_nobody_listens_on_is_reported_not_raised(tmp_path: Path) -> None:
    assert Systemd.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).notify("WATCHDOG=1") is False


@pytest.mark.parametrize(("value", "address"), [
    (None, None), ("", None), ("@", None), ("/run/systemd/notify", "/run/systemd/notify"),
    ("@abstract/name", "\0abstract/name"), ("relative/path", None), ("vsock:2:1234", None),
])
def test_socket_address(value: str | None, address: str | None) -> None:
    assert socket_address(value) == address


@pytest.mark.parametrize(("environ", "seconds"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": "4242"}, 1.5),  # for this process
    ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": "4243"}, None),  # for another process (our parent)
    ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": "main"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "18446744073709551615"}, None),  # USEC_INFINITY
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "1.5"}, None),
    ({"WATCHDOG_USEC": ""}, None),
])
def test_watchdog_interval_follows_sd_watchdog_enabled(environ: dict[str, str], seconds: float | None) -> None:
    assert watchdog_seconds(environ, pid=4242) == seconds


def test_watchdog_pid_is_compared_with_this_process_by_default() -> None:
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Systemd.from_environment(mine).watchdog_seconds == 2.0
    assert Systemd.from_environment(mine | {"WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_seconds is None


# --- the real worker under a pretend systemd ---------------------------------------------------

WATCHDOG_SECONDS = 2  # pings every second, while the last successful tick is younger than 2 s


def start_worker(cli: Cli, notify_socket: str, log_path: Path) -> subprocess.Popen[str]:
    cli.env |= {"NOTIFY_SOCKET": notify_socket, "WATCHDOG_USEC": str(WATCHDOG_SECONDS * 1_000_000),
                "SIGNALPROOF_MONITOR_INTERVAL_SECONDS": "1"}
    cli.env.pop("WATCHDOG_PID", None)  # were we run by systemd ourselves, that would be our pid
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the worker itself
        return subprocess.Popen(cli.command("worker"), cwd=cli.cwd, env=cli.env, stdout=log, stderr=subprocess.STDOUT,
                                text=True)


def stop_worker(worker: subprocess.Popen[str], receiver: Listener) -> None:
    worker.send_signal(signal.SIGTERM)
    after_sigterm = receiver.wait_for("STOPPING=1", timeout=30)
    assert worker.wait(timeout=60) == 0
    assert after_sigterm[-1] == ["STOPPING=1", "STATUS=finishing the current job"]


def wait_for_log(log_path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text():
        assert time.monotonic() < deadline, f"{text!r} not in the worker's log:\n{log_path.read_text()}"
        time.sleep(0.2)


def rename_table(database_url: str, old: str, new: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))
    finally:
        engine.dispose()


def pings(messages: list[list[str]]) -> int:
    return sum(message == ["WATCHDOG=1"] for message in messages)


def test_worker_pings_only_while_its_ticks_succeed(cli: Cli, database_url: str, listener: tuple[Listener, str],
                                                   tmp_path: Path) -> None:
    receiver, path = listener
    log_path = tmp_path / "worker.log"
    worker = start_worker(cli, path, log_path)
    try:
        first = receiver.wait_for("READY=1", timeout=60)
        assert first == [["READY=1", "STATUS=running: monitor every 1 s"]]  # nothing before READY
        assert pings(receiver.collect(5)) >= 3

        # The database refuses the heartbeat write: every tick now fails (the jobs themselves
        # may still run). Ticks that had already succeeded keep the pings going for at most
        # one watchdog interval; after that, silence, which is what makes systemd restart us.
        rename_table(database_url, "worker_heartbeat", "worker_heartbeat_away")
        broken_at = time.monotonic()
        wait_for_log(log_path, "failed", timeout=15)
        receiver.collect(broken_at + WATCHDOG_SECONDS + 2 - time.monotonic())
        silence = receiver.collect(3 * WATCHDOG_SECONDS)
        assert pings(silence) == 0, silence
        assert worker.poll() is None  # alive, still trying: it is systemd's job to restart it

        rename_table(database_url, "worker_heartbeat_away", "worker_heartbeat")
        receiver.wait_for("WATCHDOG=1", timeout=15)  # ticks succeed again, and so do the pings
    finally:
        if worker.poll() is None:
            stop_worker(worker, receiver)
    log = log_path.read_text()
    failures = [line for line in log.splitlines() if line.startswith("ERROR") and " failed" in line]
    assert failures, log
    assert "worker_heartbeat" in log  # the database error the ticks failed with
    assert "SIGTERM received" in log and "worker stopped" in log


def test_worker_notifies_an_abstract_socket(abstract_listener: tuple[Listener, str], exchange: FakeExchange,
                                            tmp_path: Path) -> None:
    receiver, name = abstract_listener
    database_url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(database_url)
    cli = Cli(database_url, exchange.url, tmp_path)
    worker = start_worker(cli, name, tmp_path / "worker.log")
    try:
        assert receiver.wait_for("READY=1", timeout=60)[0][0] == "READY=1"
        receiver.wait_for("WATCHDOG=1", timeout=10)
    finally:
        stop_worker(worker, receiver)
