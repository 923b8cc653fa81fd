"""Tell a database that is down (retry) from a configuration that is wrong (exit 2).

An exporter started while PostgreSQL is down or restarting must stay up, report up=0 and catch
up by itself; one given a DSN the server rejects (bad password, no such database) or a host that
does not resolve must fail at once with a clear error, because retrying cannot fix it.
"""

from __future__ import annotations

import psycopg

# Server-side refusals that end when the server is back: admin shutdown, crash shutdown,
# "the database system is starting up", and connection-exception class 08.
_RETRYABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "08000", "08001", "08003", "08006"})
# libpq reports client-side failures with no SQLSTATE; these are the ones a restart resolves.
_UNREACHABLE_TEXT = (
    "connection refused",
    "timeout expired",
    "no such file or directory",  # the Unix socket is gone while the server is down
    "server closed the connection",
    "could not receive data",
    "network is unreachable",
    "no route to host",
    "the database system is starting up",
    "the database system is shutting down",
)


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` means the server could not be reached (worth retrying)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if exc.sqlstate:
        return exc.sqlstate in _RETRYABLE_SQLSTATES
    text = str(exc).lower()
    return any(marker in text for marker in _UNREACHABLE_TEXT)
