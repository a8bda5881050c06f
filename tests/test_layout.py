"""The import graph the README's map promises: data flows one way, and the pure core stays pure.

- `shared/` never imports the worker, the site, the demo or the entry package;
- `worker/` never imports the site, the demo or the entry package;
- the trade rules and everything they use import no database or HTTP library.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = ("shared/admission.py", "shared/candles.py", "shared/clock.py", "shared/exits.py", "shared/kinds.py",
        "shared/ledger.py", "shared/metrics.py", "shared/money.py", "shared/signal_files.py", "shared/signals.py",
        "shared/signing.py")
PERSISTENCE_OR_NETWORK = ("sqlalchemy", "sqlmodel", "psycopg", "requests", "streamlit", "alembic", "shared.models",
                          "shared.database", "shared.events")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(("package", "forbidden"), [
    ("shared", {"worker", "signalproof", "demo", "track_record", "site"}),
    ("worker", {"signalproof", "demo", "track_record", "site"}),
])
def test_no_arrow_points_up(package: str, forbidden: set[str]) -> None:
    offenders = {f"{path.relative_to(ROOT)} imports {name}"
                 for path in (ROOT / package).rglob("*.py") for name in imports(path) if top(name) in forbidden}
    assert not offenders


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_touches_no_database_and_no_network(module: str) -> None:
    impure = {name for name in imports(ROOT / module)
              if any(name == bad or name.startswith(bad + ".") for bad in PERSISTENCE_OR_NETWORK)}
    assert not impure
