"""Deployment configuration: read from the environment once, in the entry points."""

import ipaddress
from pathlib import Path

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SIGNALPROOF_"


class ConfigError(ValueError):
    """A setting the operator must fix; the message is one line naming the variable."""


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    database_url: str = "sqlite:///var/signalproof.db"
    # A PostgreSQL read replica of `database_url` (docs/deployment.md): when set, the public
    # site's pages and API read from it; the worker, the CLI and the owner's settings page keep
    # writing (and the settings page reading) on the primary. Unset or empty: the primary.
    site_database_url: str | None = None
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
    # When the worker's heartbeat counts as stale (`worker --check`, the site, compose and
    # systemd all use shared.heartbeat.stale_after); unset: 3 × monitor_interval_seconds, at
    # least 60 s. Raise it if monitor passes run long.
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

    # Checkpoints of the ledger's head (worker/checkpoints.py, docs/ledger.md): how often while
    # it moves, the Ed25519 key that signs them (`signalproof keygen`), and an optional command
    # that receives each one on stdin to publish it (examples/anchors/), with its time limit.
    checkpoint_minutes: float = 10.0
    signing_key: SecretStr | None = None
    anchor_command: str | None = None
    anchor_timeout_seconds: float = 30.0
    # The site re-walks its whole chain this often (site/track_record/self_check.py): an entry
    # changed in place behind the head is caught then; new entries are checked as they arrive.
    self_check_seconds: float = 600.0

    @field_validator("database_url")
    @classmethod
    def _psycopg(cls, url: str) -> str:
        """`postgres://…` and `postgresql://…` (what hosting providers hand out) mean psycopg 3,
        the driver we ship; SQLAlchemy would otherwise look for psycopg2 or refuse the name."""
        for scheme in ("postgres://", "postgresql://"):
            if url.startswith(scheme):
                return "postgresql+psycopg://" + url[len(scheme):]
        return url

    @field_validator("site_database_url")
    @classmethod
    def _replica(cls, url: str | None) -> str | None:
        """The replica's URL, spelt like the primary's; refused at start-up unless it names a
        PostgreSQL database (a replica of a SQLite file does not exist). Empty means unset, so a
        compose file or a .env can leave it blank."""
        if url is None or not url.strip():
            return None
        import sqlalchemy as sa

        url = cls._psycopg(url.strip())
        try:
            backend = sa.engine.make_url(url).get_backend_name()
        except sa.exc.ArgumentError:
            backend = None
        if backend != "postgresql":  # the message leaves the URL out: it may hold a password
            raise ValueError("not a PostgreSQL URL (expected postgresql://user@host:port/database, "
                             "a read replica of SIGNALPROOF_DATABASE_URL)")
        return url

    @field_validator("signing_key")
    @classmethod
    def _ed25519(cls, key: SecretStr | None) -> SecretStr | None:
        """A signing key that cannot sign is refused at start-up, not at the first checkpoint."""
        if key is not None and key.get_secret_value().strip():
            from shared.signing import BadKey, public_of

            try:
                public_of(key.get_secret_value())
            except BadKey as exc:
                raise ValueError(f"{exc} (make one with `signalproof keygen`)") from None
            return key
        return None

    @model_validator(mode="after")
    def _positive(self) -> "Config":
        """Durations and counts that only make sense above (or at) zero: refused in one line
        here rather than as a scheduler or HTTP client error later."""
        positive = {"http_timeout_seconds": self.http_timeout_seconds,
                    "monitor_interval_seconds": self.monitor_interval_seconds,
                    "owner_idle_minutes": self.owner_idle_minutes,
                    "worker_stale_after_seconds": self.worker_stale_after_seconds,
                    "retry_after_cap_seconds": self.retry_after_cap_seconds,
                    "checkpoint_minutes": self.checkpoint_minutes,
                    "anchor_timeout_seconds": self.anchor_timeout_seconds,
                    "self_check_seconds": self.self_check_seconds}
        for name, value in positive.items():
            if value is not None and not value > 0:  # `not >` also refuses NaN
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: must be greater than 0 (got {value:g})")
        for name, value in {"http_retries": self.http_retries, "http_backoff_seconds": self.http_backoff_seconds}.items():
            if not value >= 0:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: must be 0 or more (got {value:g})")
        if self.site_database_url is not None and not self.database_url.startswith("postgresql"):
            raise ValueError(f"{ENV_PREFIX}SITE_DATABASE_URL: a read replica needs SIGNALPROOF_DATABASE_URL on "
                             "PostgreSQL too (unset it to read the database the worker writes)")
        return self

    @property
    def site_read_url(self) -> str:
        """Where the public pages and API read: the read replica when one is set, else the
        database the worker writes."""
        return self.site_database_url or self.database_url


def load_config() -> Config:
    """The configuration, or a ConfigError whose one line names the variable and the problem."""
    try:
        return Config()
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    location = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if location:
        given = error.get("input")
        secret = any(word in location[0] for word in ("url", "password", "key", "command"))  # may hold credentials
        shown = f" (got {given!r})" if isinstance(given, (str, int, float)) and not secret else ""
        return f"{ENV_PREFIX}{location[0].upper()}: {message}{shown}"
    return message  # a model-level check: its message already names the variable


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
