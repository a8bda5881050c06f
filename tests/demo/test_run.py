"""`signalproof demo` refuses, in one line, what would hurt: a taken port, and a --database that
holds anything but a previous demo (it recreates its database at every start)."""

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from demo.bot import SOURCE
from demo.run import DemoUnavailable, fresh_database, made_by_demo
from shared import settings as runtime
from shared.clock import utcnow
from shared.database import make_engine, transaction, upgrade
from shared.models import Signal
from signalproof.cli import main


def database_with(path: Path, *sources: str, demo_settings: bool = False) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        if demo_settings:
            runtime.change({"max_trade_hours": "24"}, actor="demo", now=utcnow(), session=session)
        for number, source in enumerate(sources):
            session.add(Signal(source=source, signal_id=str(number)))
    engine.dispose()
    return url


def signals_in(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(Signal)).scalar_one()
    engine.dispose()
    return int(count)


def test_a_previous_demo_is_replaced_by_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    url = database_with(path, SOURCE, SOURCE, demo_settings=True)
    assert made_by_demo(path)
    assert fresh_database(path) == f"sqlite:///{path.resolve()}"
    assert signals_in(url) == 0


@pytest.mark.parametrize(("sources", "demo_settings"), [
    ((SOURCE, "mybot"), True),  # someone's signals next to the demo's
    ((), False),  # an empty record someone set up (db upgrade) and may be configuring
])
def test_anything_else_is_left_alone(tmp_path: Path, sources: tuple[str, ...], demo_settings: bool) -> None:
    path = tmp_path / "signalproof.db"
    url = database_with(path, *sources, demo_settings=demo_settings)
    with pytest.raises(DemoUnavailable, match="is not a demo database"):
        fresh_database(path)
    assert signals_in(url) == len(sources)


def test_a_file_that_is_not_sqlite_is_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n" * 100)
    assert not made_by_demo(notes)
    with pytest.raises(DemoUnavailable):
        fresh_database(notes)
    assert notes.read_text().startswith("my notes")


def test_a_taken_port_is_one_line_and_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port), "--database", str(tmp_path / "demo.db")]) == 2
    assert capsys.readouterr().err == f"signalproof: port {port} is in use: choose another with --port\n"
    assert not (tmp_path / "demo.db").exists()
