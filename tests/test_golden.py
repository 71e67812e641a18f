"""Golden files: parse and extract output on hand-written fixtures, against reviewed JSON.

The fixtures, their pretend URLs and content types are in tests/golden/cases.py; see
tests/golden/README.md for regenerating the expected JSON when a change is intended.
"""

from __future__ import annotations

import json

import pytest
from golden.cases import ARTICLES, CASES, FEEDS, GOLDEN, REGENERATE, Case, output, render


def _check(case: Case) -> None:
    found = json.loads(render(output(case)))  # through JSON, as written: tuples become lists
    try:
        expected = json.loads(case.expected_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pytest.fail(f"{case.expected_path.name} is missing: run `{REGENERATE}`")
    assert found == expected, (
        f"{case.folder}/{case.name} no longer gives {case.expected_path.name}. If the change is "
        f"intended, run `{REGENERATE}` and review `git diff tests/golden/`."
    )


@pytest.mark.parametrize("case", FEEDS, ids=lambda case: case.name)
def test_feed(case: Case) -> None:
    _check(case)


@pytest.mark.parametrize("case", ARTICLES, ids=lambda case: case.name)
def test_article(case: Case) -> None:
    _check(case)


def test_every_file_has_a_row_in_cases() -> None:
    """A fixture without a row would never be tested; an expected file without one is stale."""
    known = {case.path for case in CASES} | {case.expected_path for case in CASES}
    on_disk = {path for folder in ("feeds", "articles") for path in (GOLDEN / folder).iterdir()}
    assert sorted(p.relative_to(GOLDEN).as_posix() for p in on_disk - known) == []
    assert len({case.name for case in CASES}) == len(CASES), "fixture names must be unique"
