"""the event log becomes a hash-chained ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:40:00

Every existing event is chained, in its order, after a `ledger.genesis` entry that says how
many there were: they were recorded before the ledger existed, so nothing proves they were
not changed before this migration; everything after it is provable.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

import shared.columns

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_PREV = "0" * 64


def _canonical(value: object) -> bytes:
    # A copy of shared.ledger.canonical's fast path as of this revision (a migration must not
    # change when the code does): our values are ASCII-keyed objects, strings, ints, booleans.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _data(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)  # old data was written with json.dumps(default=str): floats become text


# The runtime settings' defaults as of this revision (the table of docs/configuration.md): a new database's ledger
# starts from them, so a verifier knows the settings in force before any `settings.changed`.
DEFAULT_SETTINGS = {
    "stake_usd": "100", "entry_mode": "market", "take_profit_target": "1", "fee_rate_spot": "0.001",
    "fee_rate_futures": "0.0005", "slippage_bps": "0", "maintenance_margin_rate": "0.004",
    "pending_expiry_hours": "24", "max_trade_hours": "0", "candle_interval": "1m", "starting_balance_usd": "1000",
    "min_confidence": "0", "markets": "SPOT,FUTURES", "symbols_allow": "", "symbols_deny": "",
    "max_open_trades": "0", "one_per_symbol_side": "false", "paused": "false", "signal_feed_url": "",
    "site_title": "signalproof", "site_description": "The honest, verifiable track record of a crypto signal bot.",
}


BOOLEAN_SETTINGS = ("one_per_symbol_side", "paused")  # SQLite hands them back as 0/1


def _setting_text(key: str, value: object) -> str:
    if key in BOOLEAN_SETTINGS:
        return "true" if value and str(value).lower() not in ("0", "false") else "false"
    if key == "signal_feed_url" and value:
        from urllib.parse import urlsplit

        return f"set ({urlsplit(str(value)).hostname or 'unknown host'})"  # public: the host only
    text = str(value)
    if "." in text and text.replace(".", "", 1).isdigit():
        text = text.rstrip("0").rstrip(".") or "0"
    return text


def _settings_in_force(bind: sa.Connection) -> dict[str, str]:
    row = bind.execute(sa.text("SELECT * FROM runtime_settings WHERE id = 1")).mappings().first()
    if row is None:
        return dict(DEFAULT_SETTINGS)
    return {key: _setting_text(key, row[key]) if key in row else default for key, default in DEFAULT_SETTINGS.items()}


def upgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_seq', sa.Integer(), nullable=True))

    bind = op.get_bind()
    event = sa.table('event', sa.column('id', sa.Integer()), sa.column('at', shared.columns.UtcDateTime()),
                     sa.column('kind', sa.String()), sa.column('actor', sa.String()),
                     sa.column('signal_pk', sa.Integer()), sa.column('trade_id', sa.Integer()),
                     sa.column('message', sa.String()), sa.column('data', sa.String()),
                     sa.column('prev', sa.String()), sa.column('hash', sa.String()))
    old = bind.execute(sa.select(event).order_by(event.c.id)).mappings().all()
    bind.execute(sa.delete(event))
    now = datetime.now(timezone.utc)
    genesis = {"actor": "system", "migrated_events": len(old), "settings": _settings_in_force(bind),
               "message": "the ledger starts here" + (f"; the {len(old)} events recorded before it follow, chained "
                                                      "in their order" if old else ""),
               "note": "entries 2 to {} were recorded before the ledger existed".format(len(old) + 1) if old else
               "every state change from here on is one entry of this chain"}
    rows = [dict(at=now, kind="ledger.genesis", actor="system", signal_pk=None, trade_id=None,
                 message=genesis["message"], data=genesis)]
    for row in old:
        try:
            data = json.loads(row["data"]) if row["data"] else {}
        except ValueError:
            data = {"text": row["data"]}
        if not isinstance(data, dict):
            data = {"value": data}
        data = _data(data)
        data.update({"actor": row["actor"], "message": row["message"]})
        for key in ("trade_id", "signal_pk"):
            if row[key] is not None:
                data[key] = row[key]
        rows.append(dict(at=row["at"], kind=row["kind"], actor=row["actor"], signal_pk=row["signal_pk"],
                         trade_id=row["trade_id"], message=row["message"], data=data))
    prev = GENESIS_PREV
    chained = []
    for seq, row in enumerate(rows, start=1):
        body = {"seq": seq, "time": _time(row["at"]), "kind": row["kind"], "data": row["data"], "prev": prev}
        digest = hashlib.sha256(_canonical(body)).hexdigest()
        chained.append({**row, "id": seq, "data": _canonical(row["data"]).decode(), "prev": prev, "hash": digest})
        prev = digest
    for start in range(0, len(chained), 1000):
        bind.execute(sa.insert(event), chained[start:start + 1000])

    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.alter_column('prev', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.drop_column('received_seq')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev')
