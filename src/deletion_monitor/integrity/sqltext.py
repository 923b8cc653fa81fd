"""How many SQL statements a check's text holds, without a database.

A check runs in a READ ONLY transaction with a transaction-local statement_timeout. Over the
simple query protocol `COMMIT; DELETE FROM profiles; SELECT 0` is three statements: the COMMIT
ends that transaction, and the DELETE and a `pg_sleep` after it run outside both guards. The
runner uses the extended protocol, which refuses a second statement; this scanner lets the
checks file be refused first, at load, with one line naming the check.

The scanner knows PostgreSQL's lexical rules that can hide a `;`: '…' strings (with ''), E'…'
strings (with backslash escapes), "…" identifiers, $tag$…$tag$ bodies, -- and nested /* */
comments. It does not parse SQL; anything it cannot classify is left to the server.
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\uffff]")
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# Query forms whose only job is to return rows. A READ ONLY transaction would refuse writes
# anyway; refusing other statements at load gives a clear error instead of a strange result.
QUERY_KEYWORDS = ("select", "with", "values", "table")


class SqlShapeError(ValueError):
    """The text is not exactly one query; the message says why (no SQL quoted)."""


def split_statements(sql: str) -> list[str]:
    """The statements of `sql` (text between top-level `;`), comments kept, empty ones dropped."""
    statements: list[str] = []
    start = 0
    content = False  # the current statement has something besides blanks and comments
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        prev = sql[i - 1] if i > 0 else ""
        if ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        if ch == ";":
            if content:
                statements.append(sql[start:i])
            start, content, i = i + 1, False, i + 1
            continue
        if not ch.isspace():
            content = True
        if ch == "'":
            escapes = prev in "eE" and (i < 2 or not _IDENT_CHAR.match(sql[i - 2]))
            i += 1
            while i < n:
                if escapes and sql[i] == "\\":
                    i += 2
                elif sql[i] == "'":
                    if sql.startswith("''", i):
                        i += 2
                    else:
                        break
                else:
                    i += 1
            i += 1
            continue
        if ch == '"':
            i += 1
            while i < n:
                if sql.startswith('""', i):
                    i += 2
                elif sql[i] == '"':
                    break
                else:
                    i += 1
            i += 1
            continue
        if ch == "$" and not _IDENT_CHAR.match(prev or " "):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(0), tag.end())
                i = n if end < 0 else end + len(tag.group(0))
                continue
        i += 1
    if content:
        statements.append(sql[start:])
    return statements


def _first_word(statement: str) -> str:
    """The first keyword, after comments and opening parentheses."""
    text = statement
    while True:
        text = text.lstrip().lstrip("(").lstrip()
        if text.startswith("--"):
            text = text.partition("\n")[2]
        elif text.startswith("/*"):
            depth, i = 1, 2
            while i < len(text) and depth:
                step = text[i : i + 2]
                depth += 1 if step == "/*" else -1 if step == "*/" else 0
                i += 2 if step in ("/*", "*/") else 1
            text = text[i:]
        else:
            break
    match = _FIRST_WORD.match(text)
    return match.group(0).lower() if match else ""


def single_query(sql: str) -> str:
    """`sql` as exactly one query, its trailing `;` and blanks removed; SqlShapeError if not.

    The result can be wrapped as a subquery (see bounded()).
    """
    statements = split_statements(sql)
    if not statements:
        raise SqlShapeError("is empty (no SQL statement)")
    if len(statements) > 1:
        raise SqlShapeError(
            f"must be exactly one SQL statement, found {len(statements)} separated by ';' "
            "(a second statement would run outside the READ ONLY transaction and the timeout)"
        )
    word = _first_word(statements[0])
    if word not in QUERY_KEYWORDS:
        raise SqlShapeError(
            f"must be a query ({', '.join(k.upper() for k in QUERY_KEYWORDS)}), "
            f"got {word.upper() or 'no keyword'}"
        )
    return statements[0].strip()


def bounded(sql: str, limit: int) -> str:
    """`sql` wrapped to return at most `limit` rows: the server stops producing rows at the
    limit, so neither PostgreSQL nor this process ever holds more (a 2 M-row result costs
    nothing).

    It does not validate: text that is not one query stays as it is inside the wrapper, and the
    extended protocol the runner uses refuses it on the server (the second line of defence
    behind single_query() at load).
    """
    statements = split_statements(sql)
    body = statements[0].strip() if len(statements) == 1 else sql
    # The newline before ')' ends a trailing -- comment of the check's own text.
    return f"SELECT * FROM (\n{body}\n) AS bounded_check LIMIT {int(limit)}"
