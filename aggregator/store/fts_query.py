"""Search queries as FTS5 reads them: which have nothing to look for, and what to tell a
person whose query FTS5 refuses, in words, with queries that work."""

from __future__ import annotations

import re
import sqlite3

EMPTY = (
    "the search query has no words to look for; give at least one word, for example"
    " `aggregator search Libya`"
)
VALID = (
    'queries that work: Libya | "Security Council" | Libya NOT Tripoli | Libya OR Benghazi'
    " | sanction* | title:Libya | NEAR(Libya talks, 5); to search for words exactly as"
    " typed, put the whole query in double quotes"
)
_NEAR = re.compile(r'syntax error near "(.*)"')
_COLUMN = re.compile(r"no such column: (.*)")


def has_words(query: str) -> bool:
    """Whether the query has anything the index holds: letters or digits. FTS5 reads "",
    spaces or punctuation alone as a syntax error."""
    return any(ch.isalnum() for ch in query)


def problem(exc: BaseException) -> str | None:
    """What FTS5 said about the query, when the error is the query's (not the store's)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if not isinstance(cause, sqlite3.OperationalError):
        return None
    said = str(cause)
    if said.startswith(("fts5:", "no such column:", "unknown special query")) or said in (
        "unterminated string",
    ):
        return said
    return None


def explain(query: str, said: str) -> str:
    """One message: what is wrong with the query, in words, and queries that work."""
    column = _COLUMN.match(said)
    near = _NEAR.search(said)
    if said == "unterminated string":
        why = "a double quote is opened but never closed"
    elif column and f"-{column[1]}" in query:
        why = (
            f'a hyphen before "{column[1]}" reads as a column filter; put words with a hyphen'
            f' in double quotes ("covid-19")'
        )
    elif column:
        why = (
            f'"{column[1]}:" reads as a column name, and the index has only title, text and'
            " summary; put words with a colon in double quotes"
        )
    elif said.startswith("unknown special query"):
        why = "a * must end a word (sanction*), it cannot stand alone"
    elif near and near[1]:
        why = (
            f'FTS5 cannot read it near "{near[1]}": AND, OR and NOT need a word on each side,'
            " and parentheses come in pairs"
        )
    else:
        why = (
            "FTS5 cannot read it: it ends with an operator (AND, OR, NOT) or an open"
            " parenthesis, or has nothing to look for"
        )
    return f"{query!r} is not valid FTS5 syntax: {why} ({said}); {VALID}"
