"""systemd's notify protocol (sd_notify(3)), standard library only.

Under a `Type=notify` unit, systemd passes two things in the environment: `NOTIFY_SOCKET`, a
datagram socket (a file path, or an abstract name written with a leading `@`) to which the
service reports `READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`; and, with `WatchdogSec=`,
`WATCHDOG_USEC`, how often it wants a sign of life (plus `WATCHDOG_PID`, the process it means).
Outside systemd (Docker, `make run`, tests) the variables are unset and every call does nothing.
The environment is read once, in the entry point, like the rest of the configuration.
"""

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Systemd:
    """Where to report to, and how often systemd wants to hear that the worker is alive."""

    address: str | None = None  # a filesystem path, or "\0name" for an abstract socket
    watchdog_seconds: float | None = None  # None: no watchdog

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> "Systemd":
        environ = os.environ if environ is None else environ
        return cls(address=socket_address(environ.get("NOTIFY_SOCKET")),
                   watchdog_seconds=watchdog_seconds(environ, pid=os.getpid() if pid is None else pid))

    def notify(self, *lines: str) -> bool:
        """Send `KEY=value` lines as one datagram; False when not under systemd or the send failed.

        A lost notification must never stop the worker (systemd then restarts it, which is
        the right outcome for a worker that cannot even reach its service manager).
        """
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.warning("cannot notify systemd at %r: %s", self.address, exc)
            return False
        return True


def socket_address(value: str | None) -> str | None:
    """`$NOTIFY_SOCKET` as an AF_UNIX address: `/path` as is, `@name` as the abstract "\\0name".

    Anything else (unset, empty, systemd's newer `vsock:` form) means: nobody to notify.
    """
    if not value or len(value) < 2:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@"):
        return "\0" + value[1:]
    log.warning("NOTIFY_SOCKET=%r is not a unix socket path or @name: not notifying systemd", value)
    return None


def watchdog_seconds(environ: Mapping[str, str], *, pid: int) -> float | None:
    """The watchdog interval, with sd_watchdog_enabled(3)'s rules.

    Enabled only when `WATCHDOG_USEC` is a positive whole number of microseconds (not
    "infinity"), and, if `WATCHDOG_PID` is set, it names this process (a child that
    inherited the variables must not ping for its parent).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0 or int(usec) == 2**64 - 1:  # USEC_INFINITY
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None and (not watchdog_pid.isdigit() or int(watchdog_pid) != pid):
        return None
    return int(usec) / 1_000_000
