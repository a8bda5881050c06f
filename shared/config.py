"""Deployment configuration: read from the environment once, in the entry points."""

from pathlib import Path

from pydantic import SecretStr
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


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a `sqlite:///path` URL, or None for other databases and `:memory:`."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        return None
    path = database_url[len(prefix):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)
