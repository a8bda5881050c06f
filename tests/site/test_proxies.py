"""Which address a login attempt counts for (site/track_record/proxies.py): the connection's
own, unless the operator named it a trusted proxy."""

import asyncio
from typing import Any

import pytest

from shared.config import proxy_networks
from track_record.proxies import PeerAddress, client_address

LOCAL_PROXY = proxy_networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize(("peer", "forwarded_for", "trusted", "client"), [
    ("203.0.113.9", "1.2.3.4", LOCAL_PROXY, "203.0.113.9"),  # not a proxy: its header is ignored
    ("127.0.0.1", "1.2.3.4", [], "127.0.0.1"),  # no trusted proxies (the default)
    ("127.0.0.1", "1.2.3.4", LOCAL_PROXY, "1.2.3.4"),
    ("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", LOCAL_PROXY, "1.2.3.4"),  # right-most untrusted hop
    ("127.0.0.1", "1.2.3.4:5555", LOCAL_PROXY, "1.2.3.4"),
    ("127.0.0.1", "[2001:db8::1]:443", LOCAL_PROXY, "2001:db8::1"),
    ("127.0.0.1", "not-an-address", LOCAL_PROXY, "127.0.0.1"),
    ("127.0.0.1", None, LOCAL_PROXY, "127.0.0.1"),
])
def test_client_address(peer: str, forwarded_for: str | None, trusted: Any, client: str) -> None:
    assert client_address(peer, forwarded_for, trusted) == client


def seen_client(scope: dict[str, Any], trusted: Any = ()) -> Any:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["client"] = scope["client"]

    asyncio.run(PeerAddress(app, trusted)(scope, None, None))
    return seen["client"]


def websocket(client: tuple[str, int], forwarded_for: str) -> dict[str, Any]:
    return {"type": "websocket", "client": client, "server": ("127.0.0.1", 8501),
            "headers": [(b"x-forwarded-for", forwarded_for.encode())]}


def test_an_address_uvicorn_took_from_the_header_is_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn, by default, believes X-Forwarded-For from loopback; the site does not."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert seen_client(websocket(("6.6.6.6", 0), "6.6.6.6")) == ("127.0.0.1", 0)
    assert seen_client(websocket(("6.6.6.6", 7), "5.5.5.5, 6.6.6.6:7")) == ("127.0.0.1", 0)
    assert seen_client(websocket(("203.0.113.9", 40000), "6.6.6.6")) == ("203.0.113.9", 40000)  # a real peer
    assert seen_client(websocket(("6.6.6.6", 0), "6.6.6.6"), proxy_networks("127.0.0.1")) == ("6.6.6.6", 0)
