"""Deployment configuration: read from the environment once, in the entry points."""

import ipaddress
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALPROOF_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///var/signalproof.db"
    spot_api_url: str = "https://data-api.binance.vision"
    futures_api_url: str = "https://fapi.binance.com"
    owner_password_hash: SecretStr | None = None
    owner_idle_minutes: int = 30  # the settings page logs the owner out after this long without an action
    # Exchange client tuning. The defaults suit Binance; tests shrink them.
    http_timeout_seconds: float = 10.0
    http_retries: int = 5
    http_backoff_seconds: float = 0.5  # first retry delay; doubles each retry
    retry_after_cap_seconds: float = 60.0
    monitor_interval_seconds: int = 30
    # `signalproof worker --check` fails once the last successful tick is older than this;
    # unset: 3 × monitor_interval_seconds, at least 60 s. Raise it if monitor passes run long.
    worker_stale_after_seconds: float | None = None
    # Set by `signalproof demo` for its site: every page then says the market is simulated.
    demo: bool = False
    # The reverse proxies in front of the site (comma-separated addresses or CIDR networks). Only
    # a connection from one of them has its X-Forwarded-For read (the right-most address that is
    # not a trusted proxy is the client's); by default none: the connection's own peer counts.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(entry, strict=False)  # ValueError: "… does not appear to be an IP …"
        return value


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a `sqlite:///path` URL, or None for other databases and `:memory:`."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        return None
    path = database_url[len(prefix):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def proxy_networks(trusted_proxies: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of a `trusted_proxies` value (an address is a network of one)."""
    return [ipaddress.ip_network(entry, strict=False)
            for entry in filter(None, (part.strip() for part in trusted_proxies.split(",")))]
