"""Which address a connection comes from, for the owner login's per-address wait.

uvicorn (which serves the site) replaces a connection's address with the one in its
X-Forwarded-For header when the connection comes from an address in `FORWARDED_ALLOW_IPS`, by
default loopback. A site bound to 127.0.0.1 would then let every guess name its own address.
`signalproof site` sets `FORWARDED_ALLOW_IPS` to `SIGNALPROOF_TRUSTED_PROXIES` (by default
nothing is trusted); `PeerAddress` below covers the site started some other way
(`streamlit run site/server.py` without that variable): it puts the connection's own address
back, and reads X-Forwarded-For only from a trusted proxy. An operator who sets
`FORWARDED_ALLOW_IPS` themselves has chosen uvicorn's behaviour: it is left alone.
"""

import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
UVICORN_DEFAULT_TRUST = ("127.0.0.1", "::1")  # uvicorn's FORWARDED_ALLOW_IPS when it is unset


def _trusted(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _host_port(hop: str) -> tuple[str, int]:
    """An X-Forwarded-For entry as uvicorn reads it ("1.2.3.4:5", "[::1]:5", "::1")."""
    hop = hop.strip()
    if hop.startswith("[") and "]" in hop:
        host, rest = hop[1:hop.find("]")], hop[hop.find("]") + 1:]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 0
    if hop.count(":") == 1:
        host, port = hop.rsplit(":", 1)
        return (host, int(port)) if port.isdigit() else (hop, 0)
    return hop, 0


def _host(hop: str) -> str:
    return _host_port(hop)[0]


def uvicorn_client(forwarded_for: str) -> tuple[str, int]:
    """The address uvicorn makes of X-Forwarded-For when it trusts only loopback (its default)."""
    trust = [ipaddress.ip_network(address) for address in UVICORN_DEFAULT_TRUST]
    hops = forwarded_for.split(",")
    for hop in reversed(hops):
        host, port = _host_port(hop)
        if not _trusted(host, trust):
            return host, port
    return _host_port(hops[0])


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The client behind `peer`: `peer` itself unless it is a trusted proxy; then the right-most
    X-Forwarded-For hop that is not a trusted proxy (what the nearest untrusted party said)."""
    if peer is None or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [_host(hop) for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # not an address: the proxy's word is not usable, the proxy counts
    return hops[0] or peer  # every hop is a trusted proxy


def _forwarded_for(scope: Scope) -> str | None:
    values = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    return ", ".join(values) if values else None


class PeerAddress:
    """ASGI middleware: `scope["client"]` is the connection's peer, or the client named by a
    trusted proxy (see the module's docstring)."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network] = ()) -> None:
        self.app = app
        self.trusted = list(trusted)
        self.uvicorn_default = "FORWARDED_ALLOW_IPS" not in os.environ

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.uvicorn_default:
            scope["client"] = self._client(scope)
        await self.app(scope, receive, send)

    def _client(self, scope: Scope) -> Any:
        client = scope.get("client")
        forwarded = _forwarded_for(scope)
        if not client or forwarded is None:
            return client
        peer = client[0]
        said = uvicorn_client(forwarded)
        if said[0] and tuple(client) == said:
            # uvicorn took this address from the header: the connection came from loopback.
            server = scope.get("server") or ("127.0.0.1", 0)
            peer = "::1" if ":" in str(server[0]) else "127.0.0.1"
        address = client_address(peer, forwarded, self.trusted)
        return (address, 0) if address != client[0] else client
