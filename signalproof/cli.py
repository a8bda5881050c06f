"""`signalproof` — the command line (docs/cli.md). Configuration is read here, once."""

import argparse
import getpass
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import closing, contextmanager
from itertools import islice
from pathlib import Path
from typing import IO, Iterator

from sqlalchemy.engine import Engine

from shared import settings as runtime
from shared.clock import utcnow
from shared.config import Config, ConfigError, load_config, sqlite_path
from shared.database import SchemaMissing, make_engine, require_schema, transaction, upgrade
from shared.signal_files import CHUNK_CHARS, RawRow, read_file, refusal
from shared.queries import headline_stats
from shared.trades import (
    FILL_EXPORT_COLUMNS, SIGNAL_COLUMNS, TRADE_COLUMNS, export_fills, export_signals, export_trades, write_csv,
)


class UserError(Exception):
    """Something the user can fix; printed as one line, exit status 2."""


def _engine(config: Config, *, read_only: bool = False) -> Engine:
    """An engine on an existing, migrated database. Only `db upgrade` (and the demo) create a
    database: any other command on a SQLite file that is not there says so and creates nothing."""
    import sqlalchemy as sa

    path = sqlite_path(config.database_url)
    if path is not None and not path.is_file():
        raise UserError(f"cannot open the database: {path} does not exist: run `signalproof db upgrade` first")
    try:
        engine = make_engine(config.database_url, read_only=read_only)
    except sa.exc.ArgumentError as exc:  # includes an unknown dialect or driver
        raise UserError(f"SIGNALPROOF_DATABASE_URL: {exc}") from None
    require_schema(engine)
    return engine


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            yield handle
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None


def _write_csv(path: str | None, header: Sequence[str], rows: Iterable[list[str]]) -> None:
    with _output(path) as handle:
        write_csv(handle, header, rows)


# --- commands ---------------------------------------------------------------------------


def cmd_db_upgrade(config: Config, _args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    try:
        upgrade(config.database_url)
    except sa.exc.OperationalError as exc:  # unreachable server, wrong password, unwritable file
        raise UserError(f"cannot open the database: {str(exc.orig).strip()}") from None
    print("database schema is up to date")
    return 0


def cmd_db_rebuild_summaries(config: Config, _args: argparse.Namespace) -> int:
    from shared import summaries

    with transaction(_engine(config)) as session:
        ended = summaries.rebuild(session=session)
    print(f"summaries rebuilt from {ended} ended trades")
    return 0


IMPORT_BATCH_ROWS = 1000


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """A file that cannot be read is the user's to fix: one line, exit status 2."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot read {path}: not UTF-8 text") from None


def _file_rows(path: str, *, shown: str) -> Iterator[RawRow]:
    """The records of a signal file, read in chunks: memory does not grow with the file."""
    with _reading(shown), open(path, encoding="utf-8-sig", newline="") as handle:
        yield from read_file(handle)


def _check_text(path: str, *, shown: str) -> None:
    """Every byte of the file is UTF-8 text (decoded only, fast), before any of it is stored."""
    with _reading(shown), open(path, encoding="utf-8-sig", newline="") as handle:
        while handle.read(CHUNK_CHARS):
            pass


@contextmanager
def _rereadable(path: str) -> Iterator[str]:
    """`path` itself when it is a regular file; anything else (a pipe: `signals import
    /dev/stdin < file`) is copied to a temporary file first, which can be read twice."""
    with _reading(path):
        if stat.S_ISREG(os.stat(path).st_mode):
            yield path
            return
        with open(path, "rb") as source, tempfile.NamedTemporaryFile(prefix="signalproof-import-") as copy:
            shutil.copyfileobj(source, copy)
            copy.flush()
            yield copy.name


def cmd_signals_import(config: Config, args: argparse.Namespace) -> int:
    with _rereadable(args.path) as path:
        return _import_signals(config, path, shown=args.path, source=args.source or "default")


def _import_signals(config: Config, path: str, *, shown: str, source: str) -> int:
    from worker.intake import IntakeReport, store_rows

    # The file is never held whole: it is read through first, to refuse it before anything is
    # stored if it is not UTF-8 text or not a signal file (`refusal` stops at the first valid
    # signal), then once more to store it.
    now = utcnow()
    _check_text(path, shown=shown)
    with closing(_file_rows(path, shown=shown)) as rows:
        problem = refusal(rows, received_at=now, default_source=source)
    if problem is not None:
        raise UserError(f"{shown} refused: {problem}")
    engine = _engine(config)
    report = IntakeReport()
    # One transaction per batch, so a long import never holds SQLite's write lock for long
    # (other writers, e.g. `settings set`, get their turn in between). A re-run after an
    # interruption is safe: (source, id) already stored counts as a duplicate.
    with closing(_file_rows(path, shown=shown)) as rows:
        while batch := list(islice(rows, IMPORT_BATCH_ROWS)):
            with transaction(engine) as session:
                part = store_rows(batch, default_source=source, received_at=now, actor="import", session=session)
            report.accepted, report.rejected = report.accepted + part.accepted, report.rejected + part.rejected
            report.duplicate += part.duplicate
            report.rejections += part.rejections
    print(report.summary())
    for line, reason in report.rejections:
        print(f"  line {line}: {reason}")
    return 0


def cmd_signals_export(config: Config, args: argparse.Namespace) -> int:
    with transaction(_engine(config)) as session:
        _write_csv(args.output, SIGNAL_COLUMNS, export_signals(session=session))
    return 0


def cmd_trades_export(config: Config, args: argparse.Namespace) -> int:
    with transaction(_engine(config)) as session:
        _write_csv(args.output, TRADE_COLUMNS, export_trades(session=session))
    return 0


def cmd_trades_fills(config: Config, args: argparse.Namespace) -> int:
    with transaction(_engine(config)) as session:
        _write_csv(args.output, FILL_EXPORT_COLUMNS, export_fills(session=session))
    return 0


def cmd_stats(config: Config, args: argparse.Namespace) -> int:
    with transaction(_engine(config)) as session:
        stats = headline_stats(session=session).to_json_dict()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        width = max(map(len, stats))
        for key, value in stats.items():
            print(f"{key:<{width}}  {'—' if value is None else value}")
    return 0


def cmd_settings_show(config: Config, _args: argparse.Namespace) -> int:
    with transaction(_engine(config)) as session:
        values = runtime.as_dict(runtime.load(session=session))
    width = max(map(len, values))
    for key, value in values.items():
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_settings_set(config: Config, args: argparse.Namespace) -> int:
    engine = _engine(config)
    try:
        with transaction(engine) as session:
            # "cli", never the server's user name: the log of changes is public.
            applied = runtime.change({args.key: args.value}, actor="cli", now=utcnow(), session=session)
    except runtime.SettingError as exc:
        raise UserError(str(exc)) from None
    for key, old, new in applied:
        print(f"{key}: {old} → {new}")
    if not applied:
        print(f"{args.key} unchanged")
    return 0


def cmd_worker(config: Config, args: argparse.Namespace) -> int:
    from worker.market_data import BinanceClient
    from worker.notify import Systemd
    from worker.checkpoints import CheckpointPolicy
    from worker.service import Worker

    if args.check:
        return _worker_check(config)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise (skips: worker.service)
    client = BinanceClient(spot_url=config.spot_api_url, futures_url=config.futures_api_url,
                           timeout=config.http_timeout_seconds, retries=config.http_retries,
                           retry_after_cap=config.retry_after_cap_seconds,
                           backoff_base=config.http_backoff_seconds)
    signing_key = config.signing_key.get_secret_value() if config.signing_key is not None else None
    checkpoints = CheckpointPolicy(minutes=config.checkpoint_minutes, signing_key=signing_key,
                                   anchor_command=config.anchor_command or None,
                                   anchor_timeout=config.anchor_timeout_seconds)
    worker = Worker(_engine(config), client, http_timeout=config.http_timeout_seconds,
                    systemd=Systemd.from_environment(), checkpoints=checkpoints)
    if not args.once:
        worker.run_forever(monitor_seconds=config.monitor_interval_seconds)
        return 0
    problems = worker.catch_up()
    for problem in problems:
        print(f"not finished: {problem}")
    return 1 if problems else 0


def _worker_check(config: Config) -> int:
    """`worker --check` (the container healthcheck), one line and the status of
    shared.heartbeat: 0 healthy, 1 stale or never reported, 3 running but the exchange is
    failing (2, as for every command, when the database or the configuration is unusable)."""
    from shared import heartbeat

    # Read-only: a healthcheck must never take SQLite's write lock away from the worker.
    engine = _engine(config, read_only=True)
    with transaction(engine) as session:
        verdict = heartbeat.health(heartbeat.read(session=session), now=utcnow(),
                                   stale_after=heartbeat.stale_after(config.monitor_interval_seconds,
                                                                     config.worker_stale_after_seconds))
    print(verdict.line)
    return verdict.exit_status


def _site_dir() -> Path:
    """The site's files: inside the package when installed (`pip install .` maps the checkout's
    site/ to signalproof/site/, see pyproject.toml), else next to the package in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "site"
    return installed if (installed / "streamlit_app.py").is_file() else here.parent / "site"


SITE_DIR = _site_dir()
SITE_APP = SITE_DIR / "server.py"  # st.App: the pages (streamlit_app.py) and the public API routes
# The site's Streamlit options live in site/.streamlit/config.toml, which Streamlit reads for any
# run of the site's script. Only what protects visitors is also forced here, because a flag
# outranks a STREAMLIT_* environment variable: no error details, no developer toolbar.
SITE_OPTIONS = ("--client.showErrorDetails=none", "--client.toolbarMode=viewer")


def site_command(*streamlit_args: str) -> list[str]:
    """The command that serves the public site: `streamlit run site/streamlit_app.py` with the
    public options (extra ones are passed on). The demo starts its site with it too."""
    return [sys.executable, "-m", "streamlit", "run", str(SITE_APP), *SITE_OPTIONS, *streamlit_args]


def cmd_site(config: Config, args: argparse.Namespace) -> int:
    import os

    _engine(config)  # fail here, in one line, if the schema is missing
    if config.site_database_url is not None:
        _replica_check(config.site_database_url)
    # uvicorn reads X-Forwarded-For only from these (its default, loopback, would let any guess
    # at the owner password behind a site bound to 127.0.0.1 name its own address).
    os.environ["FORWARDED_ALLOW_IPS"] = config.trusted_proxies
    command = site_command(*args.streamlit_args)
    os.execv(command[0], command)  # the site process replaces this one (signals reach Streamlit)
    return 0


def _replica_check(url: str) -> None:
    """The read replica the public pages will read answers, read-only, and holds the schema;
    otherwise one line naming SIGNALPROOF_SITE_DATABASE_URL (the URL itself left out: it may
    hold a password)."""
    import sqlalchemy as sa

    try:
        engine = make_engine(url, read_only=True)
    except sa.exc.ArgumentError as exc:  # e.g. a driver that is not installed
        raise UserError(f"SIGNALPROOF_SITE_DATABASE_URL: {exc}") from None
    try:
        require_schema(engine)
    except SchemaMissing as exc:
        raise UserError(f"SIGNALPROOF_SITE_DATABASE_URL: {exc}") from None
    finally:
        engine.dispose()


def cmd_owner_unlock(config: Config, _args: argparse.Namespace) -> int:
    """Lift every wait of the settings page's login (the owner's way in during an attack)."""
    from sqlmodel import delete

    from shared.models import LoginThrottle

    with transaction(_engine(config)) as session:
        cleared = session.exec(delete(LoginThrottle)).rowcount  # type: ignore[call-overload]
    print(f"login waits lifted ({cleared} throttle row(s) cleared)")
    return 0


MIN_PASSWORD_LENGTH = 8


def cmd_hash_password(_config: Config, _args: argparse.Namespace) -> int:
    """Prompt twice on a terminal; otherwise read one line from standard input (a script, a
    pipe). Prints the line to paste into the environment file."""
    from argon2 import PasswordHasher

    if sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass("Owner password: ")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"use at least {MIN_PASSWORD_LENGTH} characters")
        if getpass.getpass("Again: ") != password:
            raise UserError("the two passwords differ")
    else:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        password = line.removesuffix("\n").removesuffix("\r")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"use at least {MIN_PASSWORD_LENGTH} characters "
                            "(without a terminal, the password is the first line of standard input)")
    # Single quotes: the hash's `$` signs stay literal in a shell, systemd's EnvironmentFile and .env.
    print(f"SIGNALPROOF_OWNER_PASSWORD_HASH='{PasswordHasher().hash(password)}'")
    return 0


def cmd_keygen(_config: Config, _args: argparse.Namespace) -> int:
    """A new Ed25519 key pair: the secret line for the worker's environment, the public key to publish."""
    from shared.signing import generate

    pair = generate()
    print(f"SIGNALPROOF_SIGNING_KEY='{pair.private}'")
    print(f"public key (publish it; verifiers pass it as --public-key): {pair.public}")
    return 0


def cmd_verify(config: Config, args: argparse.Namespace) -> int:
    """`signalproof verify SOURCE`: chain, checkpoints, published heads, tables, replay (signalproof/verify.py)."""
    from signalproof import verify

    try:
        heads = [verify.parse_head(text) for text in args.head]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    options = verify.Options(public_key=args.public_key, heads=heads, replay=args.replay,
                             candles=Path(args.candles) if args.candles else None)
    try:
        return verify.run(args.source, options, config=config, open_database=lambda: _engine(config, read_only=True))
    except verify.Unusable as exc:
        raise UserError(str(exc)) from None


def cmd_demo(config: Config, args: argparse.Namespace) -> int:
    """Simulated exchange, market and bot, the real worker and the real site, offline (demo/run.py)."""
    from demo.run import DemoUnavailable, run_demo

    try:
        return run_demo(config, port=args.port, database=Path(args.database), seed=args.seed,
                        site_command=site_command)
    except DemoUnavailable as exc:
        raise UserError(str(exc)) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("signalproof")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signalproof", description="The honest public track record of a signal bot.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="create or migrate the schema").set_defaults(run=cmd_db_upgrade)
    db.add_parser("rebuild-summaries", help="recreate the summary tables from the trades "
                  "(the worker keeps them; this is for repairs)").set_defaults(run=cmd_db_rebuild_summaries)

    signals = commands.add_parser("signals", help="import or export signals").add_subparsers(dest="signals_command", required=True)
    imp = signals.add_parser("import", help="import a CSV or JSON-lines file of signals")
    imp.add_argument("path")
    imp.add_argument("--source", help="source name for rows that do not name one (default: 'default')")
    imp.set_defaults(run=cmd_signals_import)
    exp = signals.add_parser("export", help="export every signal and what became of it (CSV)")
    exp.add_argument("--output", help="file to write (default: standard output)")
    exp.set_defaults(run=cmd_signals_export)

    work = commands.add_parser("worker", help="run the worker service")
    mode = work.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one full catch-up pass, then exit")
    mode.add_argument("--check", action="store_true",
                      help="one line; exit 0 healthy, 1 heartbeat stale or never reported, 2 unusable database "
                           "or configuration, 3 running but the exchange is failing (for healthchecks)")
    work.set_defaults(run=cmd_worker)

    sett = commands.add_parser("settings", help="runtime settings").add_subparsers(dest="settings_command", required=True)
    sett.add_parser("show", help="print every runtime setting").set_defaults(run=cmd_settings_show)
    setter = sett.add_parser("set", help="change one runtime setting (validated, logged publicly)")
    setter.add_argument("key", choices=list(runtime.SETTINGS), metavar="KEY")
    setter.add_argument("value", metavar="VALUE")
    setter.set_defaults(run=cmd_settings_set)

    trades = commands.add_parser("trades", help="export trades").add_subparsers(dest="trades_command", required=True)
    texp = trades.add_parser("export", help="export every trade (CSV, docs/export-schema.md schema)")
    texp.add_argument("--output", help="file to write (default: standard output)")
    texp.set_defaults(run=cmd_trades_export)
    tfills = trades.add_parser("fills", help="export every exit of every trade: targets reached and the rest closed "
                                             "(CSV: trade_id,time,kind,price,share,fees_usd,pnl_usd)")
    tfills.add_argument("--output", help="file to write (default: standard output)")
    tfills.set_defaults(run=cmd_trades_fills)

    stats = commands.add_parser("stats", help="the headline metrics")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(run=cmd_stats)

    site = commands.add_parser("site", help="serve the public Streamlit site (extra arguments go to streamlit run)")
    site.set_defaults(run=cmd_site)  # everything after `site` goes to Streamlit (see main)

    owner = commands.add_parser("owner", help="the settings page's owner").add_subparsers(dest="owner_command",
                                                                                       required=True)
    owner.add_parser("unlock", help="lift every login wait of the settings page").set_defaults(run=cmd_owner_unlock)

    commands.add_parser("hash-password", help="prompt for the owner password (or read one line from standard "
                        "input), print the SIGNALPROOF_OWNER_PASSWORD_HASH line").set_defaults(run=cmd_hash_password)

    commands.add_parser("keygen", help="print a new Ed25519 key pair for signing checkpoints "
                        "(SIGNALPROOF_SIGNING_KEY line, and the public key to publish)").set_defaults(run=cmd_keygen)

    ver = commands.add_parser("verify", help="verify the ledger of a site URL, a ledger file (JSON lines) or `db`; "
                              "exit 0 all hold, 1 a mismatch, 2 unusable input")
    ver.add_argument("source", metavar="SOURCE", help="https://… (a signalproof site), a ledger file, or db")
    ver.add_argument("--public-key", metavar="KEY", help="the owner's public key: check every checkpoint's signature")
    ver.add_argument("--head", action="append", default=[], metavar="SEQ:HASH",
                     help="a head published earlier that must still be in the chain (repeatable)")
    ver.add_argument("--replay", action="store_true",
                     help="re-resolve every trade from its signal and the settings in force, on candles")
    ver.add_argument("--candles", metavar="DIR",
                     help="candle files for --replay (<spot|futures>-<SYMBOL>-<interval>.json[.gz]) instead "
                          "of the exchange")
    ver.set_defaults(run=cmd_verify)

    demo = commands.add_parser("demo", help="offline demo: simulated market + signals, worker + site")
    demo.add_argument("--port", type=int, default=8501, help="the site's port (default 8501)")
    demo.add_argument("--database", default="var/demo.db", metavar="PATH",
                      help="the demo's own SQLite file, recreated at every start (default var/demo.db)")
    demo.add_argument("--seed", type=int, help="seed of the simulated market and bot (the same seed, the same month)")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.run is cmd_site:
        args.streamlit_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(load_config(), args)
    except (UserError, SchemaMissing, ConfigError) as exc:
        print(f"signalproof: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `signalproof trades export | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
