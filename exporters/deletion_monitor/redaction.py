"""Keep secrets out of logs, metrics and error messages."""

from __future__ import annotations

import re

# postgresql://user:password@host/db  ->  postgresql://user:***@host/db
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@\s]*)@")
# key=value DSN form: password=secret  or  password='se cret'
_KV_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace every password in connection strings found in `text` with ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group('key')}***", text)
