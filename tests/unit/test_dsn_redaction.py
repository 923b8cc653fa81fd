"""The DSN redaction helpers on DSNs libpq cannot parse: the problem they report never quotes
the DSN, and every password candidate is found and masked. The real `deletion-monitor` commands
on the same DSNs are tests/integration/test_dsn_secrets.py."""

from __future__ import annotations

import pytest
from support.dsn import HEAD, TAIL, _malformed

from deletion_monitor.common import redaction


@pytest.mark.parametrize(("label", "dsn"), _malformed())
def test_dsn_problem_never_quotes_the_dsn(label: str, dsn: str) -> None:
    problem = redaction.dsn_problem(dsn)
    assert problem and problem.startswith("invalid connection string")
    assert HEAD not in problem and TAIL not in problem
    shown = redaction.redact_dsn(dsn)
    assert HEAD not in shown and TAIL not in shown


def test_dsn_passwords_find_the_password_libpq_cannot_parse() -> None:
    dsn_passwords, redact = redaction.dsn_passwords, redaction.redact
    assert f"{HEAD} {TAIL}" in dsn_passwords(f"postgresql://u:{HEAD} {TAIL}@h/db")
    assert f"{HEAD}@{TAIL}" in dsn_passwords(f"postgresql://u:{HEAD}@{TAIL}@h/db")
    assert f"{HEAD}@{TAIL}" in dsn_passwords(f"postgresql://u:{HEAD}%40{TAIL}@h/db")
    assert f"{HEAD} {TAIL}" in dsn_passwords(f"host=h password='{HEAD} {TAIL}")
    assert f"{HEAD}" in dsn_passwords(f"postgresql://u@h/db?password={HEAD}&x=1")
    assert dsn_passwords("postgresql://u@h/db") == []
    # A literal candidate is masked anywhere in a line, e.g. in a host name libpq cut from it.
    line = f'could not translate host name "{TAIL}@h" to address'
    assert TAIL not in redact(line, dsn_passwords(f"postgresql://u:{HEAD}@{TAIL}@h/db"))
