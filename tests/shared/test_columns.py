"""The two column promises, on a real SQLite file and a real PostgreSQL database: timestamps
come back timezone-aware UTC, and money comes back as the exact Decimal that was stored."""

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.database import make_engine, transaction
from shared.models import LatestPrice, Signal

UTC = timezone.utc
MOMENT = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def make_price(**over: object) -> LatestPrice:
    values: dict[str, object] = dict(market="SPOT", symbol="ETHBTC", price=D("0.08"), updated_at=MOMENT)
    return LatestPrice(**(values | over))


def store_and_read(engine: Engine, row: LatestPrice) -> LatestPrice:
    """Write in one transaction, read back in another (no identity-map shortcut)."""
    with transaction(engine) as session:
        session.add(row)
    with transaction(engine) as session:
        stored = session.get(LatestPrice, (row.market, row.symbol))
        assert stored is not None
        return stored


# (stored, read back): a table, checked in one database so both engines stay quick to run
MOMENTS = [
    (MOMENT, MOMENT),  # UTC with microseconds
    (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
    (datetime(2024, 4, 30, 19, 30, tzinfo=timezone(timedelta(hours=-4, minutes=-30))),
     datetime(2024, 5, 1, 0, 0, tzinfo=UTC)),  # a negative offset, across midnight
    (datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)),
]


def test_datetimes_come_back_aware_utc(engine: Engine) -> None:
    with transaction(engine) as session:
        for number, (given, _) in enumerate(MOMENTS):
            session.add(make_price(symbol=f"SYM{number}XX", updated_at=given))
    with transaction(engine) as session:
        read = dict(session.exec(sa.select(LatestPrice.symbol, LatestPrice.updated_at)).all())
    for number, (_, expected) in enumerate(MOMENTS):
        value = read[f"SYM{number}XX"]
        assert value == expected
        assert value.tzinfo is UTC and value.microsecond == expected.microsecond


def test_a_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store_and_read(engine, make_price(updated_at=datetime(2024, 5, 1, 12, 0)))
    with transaction(engine) as session:  # nothing half-written
        assert session.exec(sa.select(sa.func.count()).select_from(LatestPrice)).one()[0] == 0


def test_the_server_default_timestamp_is_aware_utc_too(engine: Engine) -> None:
    """`received_at` is filled by the database (CURRENT_TIMESTAMP, text on SQLite)."""
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO signal (signal_id) VALUES ('bot-1')"))
    with transaction(engine) as session:
        received = session.exec(sa.select(Signal.received_at)).one()[0]
    assert received.tzinfo is UTC
    assert before <= received <= datetime.now(UTC) + timedelta(seconds=1)


def test_aware_datetimes_compare_correctly_in_queries(engine: Engine) -> None:
    with transaction(engine) as session:
        for hour in range(3):
            session.add(make_price(symbol=f"SYM{hour}XX", updated_at=MOMENT.replace(hour=10 + hour)))
    cutoff = datetime(2024, 5, 1, 13, 30, tzinfo=timezone(timedelta(hours=2)))  # 11:30 UTC
    with transaction(engine) as session:
        later = session.exec(sa.select(LatestPrice.symbol).where(LatestPrice.updated_at > cutoff)
                             .order_by(LatestPrice.symbol)).all()
    assert [symbol for (symbol,) in later] == ["SYM2XX"]


AMOUNTS = ["0.00005123", "123456789.123456789012345678", "0.000000000000000001", "100", "1E+3", "-42.5", "0",
           "0.10000000", "99999999999999999999.99999999999999999999"]


def test_decimals_round_trip_exactly(engine: Engine) -> None:
    with transaction(engine) as session:
        for number, amount in enumerate(AMOUNTS):
            session.add(make_price(symbol=f"SYM{number}XX", price=D(amount)))
    with transaction(engine) as session:
        read = dict(session.exec(sa.select(LatestPrice.symbol, LatestPrice.price)).all())
    assert all(isinstance(value, D) for value in read.values())
    assert [read[f"SYM{number}XX"] for number in range(len(AMOUNTS))] == [D(amount) for amount in AMOUNTS]


def test_a_non_finite_decimal_is_refused(engine: Engine) -> None:
    for amount in ("NaN", "Infinity", "-Infinity", "sNaN"):
        with pytest.raises(sa.exc.StatementError, match="non-finite"):
            store_and_read(engine, make_price(price=D(amount)))


def test_decimals_read_back_add_up_exactly(engine: Engine) -> None:
    """0.1 + 0.2 is 0.3 only if nothing went through a float on the way in or out."""
    amounts = [D("0.1"), D("0.2"), D("0.00005123")]
    with transaction(engine) as session:
        for number, amount in enumerate(amounts):
            session.add(make_price(symbol=f"SYM{number}XX", price=amount))
    with transaction(engine) as session:
        prices = [price for (price,) in session.exec(sa.select(LatestPrice.price))]
    assert sum(prices, D(0)) == D("0.30005123")
