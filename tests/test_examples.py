"""examples/signals.csv and examples/signals.jsonl, through the real CLI against the fake
exchange (the recorded candles), give exactly what the README's walkthrough shows."""

import csv
import io
import json
import re

from conftest import ROOT, Cli

EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
# The walkthrough's numbers, as the README prints them.
IMPORTS = {"signals.csv": "accepted 5, rejected 8, duplicate 1", "signals.jsonl": "accepted 4, rejected 8, duplicate 1"}
# One rejected row per kind of mistake, in file order.
REASONS = ["time must be ISO 8601", "time is in the future", "symbol must be", "side must be",
           "take_profit must be", "leverage must be 1 on SPOT", "confidence must be between 0 and 1", "is required"]


def test_the_readme_walkthrough_shows_these_counts() -> None:
    readme = README.read_text()
    for name, summary in IMPORTS.items():
        assert f"signals import examples/{name}" in readme
        assert summary in readme


def test_the_examples_import_and_resolve_as_the_readme_says(cli: Cli) -> None:
    cli("settings", "set", "candle_interval", "5m")  # the recorded futures series is 5m (see README)
    for name, summary in IMPORTS.items():
        output = cli("signals", "import", str(EXAMPLES / name)).stdout
        assert output.splitlines()[0] == summary
        reasons = [line.split(": ", 1)[1] for line in output.splitlines()[1:]]
        assert len(reasons) == len(REASONS)
        for reason, expected in zip(reasons, REASONS):
            assert expected in reason, (reason, expected)

    assert cli("worker", "--once").returncode == 0
    trades = list(csv.DictReader(io.StringIO(cli("trades", "export").stdout)))
    assert {(t["signal_id"], t["market"], t["side"], t["status"]) for t in trades} == {
        ("c1", "SPOT", "LONG", "CLOSED_TP"), ("c2", "SPOT", "SHORT", "CLOSED_TP"),
        ("c3", "SPOT", "LONG", "CLOSED_SL"), ("c4", "SPOT", "LONG", "CLOSED_TP"),
        ("c5", "FUTURES", "SHORT", "CLOSED_TP"), ("j1", "SPOT", "SHORT", "CLOSED_TP"),
        ("j2", "SPOT", "LONG", "CLOSED_TP"), ("j3", "SPOT", "SHORT", "CLOSED_TP"),
        ("j4", "FUTURES", "LONG", "CLOSED_TP"),
    }
    stats = json.loads(cli("stats", "--json").stdout)
    assert (stats["closed_trades"], stats["wins"], stats["losses"]) == (9, 8, 1)
    readme = README.read_text()
    assert re.search(rf"total_pnl_usd\s+{re.escape(str(stats['total_pnl_usd']))}", readme)

