"""Keep secrets out of logs, metrics and error messages.

Two layers, because a password can reach an output line in ways no single regex foresees:

1. Structural: `redact(text)` rewrites the password part of any connection string in the text
   (`scheme://user:***@host`, `password=***` in key=value and `?password=` query forms).
2. Literal: `dsn_passwords(dsn)` finds every string in a DSN that may be its password, *without*
   relying on libpq being able to parse it (a stray `%`, a space or an unencoded `@` makes libpq
   fail, and its message then quotes the password). `register_dsn(dsn)` remembers them for the
   process, so every later `redact()` (every JSON log line, every one-line error) removes them
   wherever they appear, e.g. in a host name that libpq cut out of a mis-encoded password.

`dsn_problem(dsn)` validates a DSN and, when it is invalid, explains why without echoing it.
"""

from __future__ import annotations

import re
import sys
import threading
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

MASK = "***"
# A literal secret shorter than this is not replaced inside arbitrary text (a 1-3 character
# password would mangle every word containing it); the structural patterns still mask it.
MIN_LITERAL = 4

# postgresql://user:password@host/db -> postgresql://user:***@host/db. Greedy up to the LAST @
# of the non-blank run, so an unencoded @ in the password is masked too, not cut in half.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>\S*)@")
# key=value form: password=secret, password = 'se cret', and the URL query form ?password=x&...
_KV_PASSWORD = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'?|[^\s&#]+)", re.IGNORECASE
)
_QUERY_PASSWORD = re.compile(r"[?&]password=(?P<pw>[^&#]*)", re.IGNORECASE)
# Inside a DSN only (never free text, where "password authentication failed" is prose): a
# key=value string with a missing '=' still names its password after the keyword.
_DSN_KV_PASSWORD = re.compile(
    r"\bpassword\s*=?\s*(?P<pw>'(?:[^'\\]|\\.)*'?|[^\s&#=]+)", re.IGNORECASE
)
# A double-quoted fragment in a libpq parse error: kept only if it is an option name.
_QUOTED = re.compile(r'"[^"]*"')
_OPTION_NAME = re.compile(r"^[a-z_]+$")

_CUT = re.compile(r"[@/:?#%&=\s']")

_lock = threading.Lock()
_registered: set[str] = set()


def dsn_passwords(dsn: str) -> list[str]:
    """Every substring of `dsn` that may be (part of) its password, longest first.

    Works on text libpq rejects: the URL user-info is everything between `://user:` and the last
    `@`, raw and percent-decoded; key=value and query `password=` values, quoted or not; and
    libpq's own reading when it can parse the string.
    """
    found: set[str] = set()
    scheme, sep, rest = dsn.partition("://")
    if sep and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", scheme) and "@" in rest:
        userinfo = rest[: rest.rfind("@")]
        if ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found.update({raw, unquote(raw)})
    for match in _QUERY_PASSWORD.finditer(dsn):
        found.update({match["pw"], unquote(match["pw"])})
    for match in _DSN_KV_PASSWORD.finditer(dsn):
        value = match["pw"]
        found.add(value)
        if value.startswith("'"):
            inner = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
            found.update({inner, re.sub(r"\\(.)", r"\1", inner)})
    try:
        parsed = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        parsed = None
    if parsed:
        found.add(str(parsed))
    # libpq cuts a mis-encoded password at these characters and may then quote a piece of it
    # (as a host name, a port, a database name): each long enough piece is a secret too.
    pieces = {p for s in found for p in _CUT.split(s) if len(p) >= MIN_LITERAL}
    return sorted((s for s in found | pieces if s), key=len, reverse=True)


def register_dsn(dsn: str | None) -> None:
    """Remember `dsn`'s password candidates: every later redact() in this process masks them."""
    if not dsn:
        return
    with _lock:
        _registered.update(s for s in dsn_passwords(dsn) if len(s) >= MIN_LITERAL)


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Replace every password in connection strings found in `text` with ***.

    `secrets` are masked literally, as are the candidates of every DSN passed to register_dsn().
    """
    with _lock:
        literal = set(_registered)
    literal.update(s for s in secrets if len(s) >= MIN_LITERAL)
    for secret in sorted(literal, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for secret in (s for s in secrets if 0 < len(s) < MIN_LITERAL):
        # A short password is masked only where it stands alone, not inside every word.
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:{MASK}@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group('key')}{MASK}", text)


def redact_dsn(dsn: str) -> str:
    """`dsn` with its password masked, for a log field; it does not have to be parseable."""
    return redact(dsn, dsn_passwords(dsn))


def error_line(exc: BaseException, dsn: str | None = None) -> str:
    """One-line text of `exc` with every password of `dsn` (and of registered DSNs) masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text, dsn_passwords(dsn) if dsn else ())


def dsn_problem(dsn: str) -> str | None:
    """None if libpq can parse `dsn`; else one line saying why, which never quotes the DSN."""
    _, sep, rest = dsn.partition("://")
    if sep and rest.count("@") > 1:
        # libpq splits user info at the FIRST @ and takes the rest of the password for the host
        # name: `u:p@ss@db` means user u, password p, host "ss@db", and its error would then
        # print that host. Nothing sensible can be meant by two @ before the host.
        return (
            "invalid connection string: more than one '@' in the URL; percent-encode an '@' "
            "in the user name or password as %40"
        )
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        secrets = dsn_passwords(dsn)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]

        def keep_option_names(match: re.Match[str]) -> str:
            # libpq quotes the offending token: an option name ("sslmod") helps and is safe;
            # anything else may be the password or a piece of it.
            inner = match.group(0)[1:-1]
            safe = _OPTION_NAME.match(inner) and not any(inner in s for s in secrets)
            return match.group(0) if safe else '"…"'

        return f"invalid connection string: {redact(_QUOTED.sub(keep_option_names, first))}"
    return None


def password_on_command_line(dsn: str | None, argv: list[str] | None = None) -> str | None:
    """The warning to log when `dsn`'s password is in this process's arguments (`argv`,
    default sys.argv), which every local user can read with ps."""
    if not dsn:
        return None
    args = sys.argv if argv is None else argv
    if not any(secret in arg for secret in dsn_passwords(dsn) for arg in args):
        return None
    return (
        "--dsn contains a password, which every local user can read with ps: pass the DSN in "
        "the DATABASE_URL environment variable or put the password in a pgpass file "
        "(PGPASSFILE, ~/.pgpass) instead"
    )
