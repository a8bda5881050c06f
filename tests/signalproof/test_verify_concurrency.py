"""Two real workers, `settings set` in a loop and the owner's pause/resume, all writing at once:
afterwards the ledger has no gap, `verify db` holds, and the replay agrees with what the
workers decided under the settings in force at each decision — SQLite and PostgreSQL."""

import signal
import subprocess
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from conftest import Cli
from shared.clock import utcnow
from shared.database import make_engine, transaction
from shared.owner import set_paused

HEADER = "id,time,symbol,side,market,entry,take_profit,stop_loss,leverage,confidence,source,note\n"


def signals(prefix: str, hours: range) -> str:
    return HEADER + "".join(f"{prefix}-{h},2018-01-22T{h:02d}:00:00Z,LTCBTC,LONG,SPOT,,0.0170,0.0160,,,,\n"
                            f"{prefix}-ada-{h},2018-01-21T{h:02d}:30:00Z,ADABTC,SHORT,SPOT,,0.0000530,0.0000570,,,,\n"
                            for h in hours)


def test_two_workers_settings_and_owner_actions_at_once_keep_one_chain(cli: Cli, database_url: str, tmp_path: Path,
                                                                      candles_path: Path) -> None:
    cli.env.update({"SIGNALPROOF_MONITOR_INTERVAL_SECONDS": "1", "SIGNALPROOF_CHECKPOINT_MINUTES": "0.02"})
    (tmp_path / "first.csv").write_text(signals("a", range(0, 12)))
    (tmp_path / "second.csv").write_text(signals("b", range(12, 24)))
    cli("signals", "import", str(tmp_path / "first.csv"))
    workers = [cli.popen("worker"), cli.popen("worker")]
    engine = make_engine(database_url)
    errors: list[BaseException] = []

    def owner() -> None:
        try:
            for number in range(12):
                with transaction(engine) as session:
                    set_paused(number % 2 == 0, now=utcnow(), session=session)
                time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    try:
        thread = threading.Thread(target=owner)
        thread.start()
        for number in range(6):
            cli("settings", "set", "stake_usd", str(100 + number))
            if number == 2:
                cli("signals", "import", str(tmp_path / "second.csv"))
        thread.join()
        with transaction(engine) as session:
            set_paused(False, now=utcnow(), session=session)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                waiting = connection.execute(sa.text("SELECT count(*) FROM signal WHERE status = 'NEW'")).scalar_one()
            if not waiting:
                break
            time.sleep(0.5)
        time.sleep(2)  # a monitor pass or two more
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    assert not errors, errors
    with engine.connect() as connection:
        count, low, high = connection.execute(sa.text("SELECT count(*), min(id), max(id) FROM event")).one()
        kinds = dict(connection.execute(sa.text("SELECT kind, count(*) FROM event GROUP BY kind")).all())
    engine.dispose()
    assert (low, high) == (1, count), "the seqs have no gap"
    assert kinds["settings.changed"] == 5 + 12 and kinds["trade.opened"] > 0  # stake_usd 100 is no change
    result = cli("verify", "db", "--replay", "--candles", str(candles_path), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK: the database:")
