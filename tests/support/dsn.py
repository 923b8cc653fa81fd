"""DSNs libpq cannot parse, each hiding a password built of two distinctive halves."""

from __future__ import annotations

# Two halves, each distinctive, so that a leaked fragment is caught as well as the whole.
HEAD, TAIL = "Qx7hEAD", "Zk9tAIL"


def _malformed() -> list[tuple[str, str]]:
    return [
        ("stray %", f"postgresql://mon:{HEAD}%{TAIL}@127.0.0.1:5432/app"),
        ("space", f"postgresql://mon:{HEAD} {TAIL}@127.0.0.1:5432/app"),
        ("unencoded @", f"postgresql://mon:{HEAD}@{TAIL}@127.0.0.1:5432/app"),
        ("two unencoded @", f"postgresql://mon:{HEAD}@x@{TAIL}@127.0.0.1/app"),
        ("query password, bad option", f"postgresql://mon@127.0.0.1/app?password={HEAD}&bogus=1"),
        ("query password, stray %", f"postgresql://mon@127.0.0.1/app?password={HEAD}%{TAIL}"),
        ("url password, bad option", f"postgresql://mon:{HEAD}{TAIL}@127.0.0.1/app?sslmod=x"),
        ("url password, broken IPv6", f"postgresql://mon:{HEAD}{TAIL}@[::1/app"),
        ("kv quoted, bad option", f"host=127.0.0.1 password='{HEAD} {TAIL}' bogus=1"),
        ("kv unterminated quote", f"host=127.0.0.1 password='{HEAD} {TAIL}"),
        ("kv bad option first", f"bogus=1 password={HEAD}{TAIL} host=127.0.0.1"),
        ("kv missing =", f"host=127.0.0.1 password {HEAD}{TAIL}"),
    ]
