"""The long-running worker (`signalproof worker`): settings changes apply on the next tick
without a restart, the heartbeat is kept, and SIGTERM ends it cleanly."""

import csv
import io
import signal
import time
from collections.abc import Callable

from conftest import Cli

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def signal_status(cli: Cli, signal_id: str) -> tuple[str, str] | None:
    for row in csv.DictReader(io.StringIO(cli("signals", "export").stdout)):
        if row["id"] == signal_id:
            return row["status"], row["reason"]
    return None


def import_one(cli: Cli, signal_id: str) -> None:
    path = cli.cwd / f"{signal_id}.csv"
    path.write_text(HEADER + f"{signal_id},2018-01-22T00:00:00Z,ETHBTC,LONG,SPOT,,0.2,0.01,,,,\n")
    cli("signals", "import", str(path))


def test_running_worker_applies_settings_without_restart_and_stops_on_sigterm(cli: Cli) -> None:
    cli.env["SIGNALPROOF_MONITOR_INTERVAL_SECONDS"] = "2"
    worker = cli.popen("worker")
    try:
        cli("settings", "set", "paused", "true")
        import_one(cli, "while-paused")
        wait_for(lambda: signal_status(cli, "while-paused") == ("SKIPPED", "paused"))

        cli("settings", "set", "paused", "false")
        cli("settings", "set", "stake_usd", "250")
        import_one(cli, "after-resume")
        wait_for(lambda: (signal_status(cli, "after-resume") or ("",))[0] == "ACCEPTED")
        trades = list(csv.DictReader(io.StringIO(cli("trades", "export").stdout)))
        assert [(t["signal_id"], t["stake_usd"]) for t in trades] == [("after-resume", "250")]
        wait_for(lambda: any(t["status"] == "OPEN" for t in csv.DictReader(io.StringIO(cli("trades", "export").stdout))))
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, output
    assert "SIGTERM received" in output and "worker stopped" in output
    assert "Traceback" not in output


def test_worker_once_reports_an_unreachable_exchange(cli: Cli) -> None:
    """The exchange down for good: --once says what is left and exits 1; nothing is decided."""
    import_one(cli, "lonely")
    cli.env["SIGNALPROOF_SPOT_API_URL"] = "http://127.0.0.1:9"  # discard port: connection refused
    cli.env["SIGNALPROOF_HTTP_RETRIES"] = "1"
    result = cli("worker", "--once", check=False)
    assert result.returncode == 1
    assert "not finished: 1 signal(s) whose symbol could not be checked" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert signal_status(cli, "lonely") == ("NEW", "")


def test_a_long_job_does_not_log_a_line_every_interval(cli: Cli) -> None:
    """An exchange that accepts connections and never answers makes each signals job last 2 s
    while the monitor is due every second: APScheduler's "skipped: maximum number of running
    instances" / "was missed by" warnings must not fill the log."""
    import socket

    with socket.socket() as silent:  # listens, never accepts or answers: every request times out
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        import_one(cli, "slow")
        cli.env |= {"SIGNALPROOF_SPOT_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
                    "SIGNALPROOF_HTTP_TIMEOUT_SECONDS": "2", "SIGNALPROOF_HTTP_RETRIES": "0",
                    "SIGNALPROOF_MONITOR_INTERVAL_SECONDS": "1"}
        worker = cli.popen("worker")
        try:
            time.sleep(12)
        finally:
            worker.send_signal(signal.SIGTERM)
            output = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, output
    assert "cannot check symbol SPOT ETHBTC yet" in output  # the slow job did run, repeatedly
    assert "maximum number of running instances" not in output
    assert "was missed by" not in output
    assert "Traceback" not in output
