"""`aggregator query` and `Reader.query` within limits: a time limit and Ctrl-C that stop a
runaway query, a bound on values, SQLite's heap and the result, functions that reach into
SQLite refused, one statement at a time; every refusal one line, never a traceback."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aggregator.cli import cli
from aggregator.errors import QueryInterrupted, QueryRefused, StoreError
from aggregator.store import Store, open_reader
from aggregator.store import reader as reader_module

FOREVER = "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c"


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "news.db")
    store = Store.open(path)
    for name in ("wire", "partner"):
        store.execute(
            "INSERT INTO feeds (name, url, added_at) VALUES (?, ?, ?)",
            [name, f"https://example.com/{name}.xml", "2026-11-27T19:00:00Z"],
        )
    store.close()
    return path


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, "query", *args])


def one_line(result: Result) -> str:
    """The command failed with exit 2 and said so in one line: no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aggregator: ")
    assert result.stdout == ""
    return lines[0]


def test_a_runaway_query_stops_at_its_time_limit_and_says_how_to_raise_it(db: str) -> None:
    started = time.monotonic()
    line = one_line(run(db, FOREVER, "--timeout", "1s"))
    assert time.monotonic() - started < 20
    assert "time limit of 1 s" in line
    assert "--timeout 2m" in line


def test_the_connection_answers_again_after_a_stopped_query(db: str) -> None:
    reader = open_reader(db)
    with pytest.raises(QueryRefused, match=r"time limit of 0\.2 s"):
        reader.query(FOREVER, timeout_s=0.2)
    assert reader.query("SELECT count(*) AS n FROM feeds") == [{"n": 2}]
    # The value limit held during the query only: the reader's other questions read
    # whatever the store holds.
    assert reader.db.conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) > 100_000_000


def test_the_default_time_limit_is_30_seconds() -> None:
    assert reader_module.QUERY_TIMEOUT_S == 30
    option = next(p for p in cli.commands["query"].params if p.name == "timeout")
    assert option.default == "30s"


@pytest.mark.parametrize("value", ["0s", "soon", "-1m"])
def test_a_bad_timeout_is_a_usage_error(db: str, value: str) -> None:
    result = run(db, "select 1", "--timeout", value)
    assert result.exit_code == 2
    assert "--timeout" in result.stderr
    assert "Traceback" not in result.output


def test_cancel_stops_a_running_query(db: str) -> None:
    calls = 0

    def cancelled() -> bool:  # turns true after the query has been running a while
        nonlocal calls
        calls += 1
        return calls > 50

    with pytest.raises(QueryInterrupted, match="interrupted"):
        open_reader(db).query(FOREVER, timeout_s=None, cancelled=cancelled)
    assert calls > 50


def test_a_huge_value_fails_fast_with_the_limit(db: str) -> None:
    started = time.monotonic()
    line = one_line(run(db, "select length(randomblob(999999999))"))
    assert time.monotonic() - started < 5
    assert "over 100 MB" in line
    assert "string or blob too big" in line


def test_sqlite_heap_is_capped_for_the_process(db: str) -> None:
    reader = open_reader(db)
    reader.query("SELECT 1")
    hard = reader.db.execute("PRAGMA hard_heap_limit").fetchone()[0]
    soft = reader.db.execute("PRAGMA soft_heap_limit").fetchone()[0]
    assert 0 < hard <= reader_module.QUERY_HEAP_BYTES
    assert 0 < soft <= reader_module.QUERY_SOFT_HEAP_BYTES


def test_a_result_too_large_to_hold_is_refused(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "QUERY_MAX_RESULT_BYTES", 10_000)
    with pytest.raises(QueryRefused, match=r"result is over 0\.01 MB"):
        open_reader(db).query(
            "with recursive c(x) as (select 1 union all select x+1 from c limit 100000)"
            " select x, 'some text' from c"
        )


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("select hex(fts3_tokenizer('simple'))", "fts3_tokenizer"),
        ("select FTS3_Tokenizer('evil', x'4141414141414141')", "fts3_tokenizer"),
        ("select load_extension('/tmp/evil.so')", "load_extension"),
        ("select rtreenode(2, x'00000000')", "rtreenode"),
        ("select rtreedepth(x'0000')", "rtreedepth"),
        ("select sqlite_log(1, 'x')", "sqlite_log"),
        ("select * from feeds where name = fts3_tokenizer('simple')", "fts3_tokenizer"),
    ],
)
def test_functions_that_reach_into_sqlite_are_refused(db: str, sql: str, name: str) -> None:
    line = one_line(run(db, sql))
    assert f"{name}() is refused" in line


def test_everyday_functions_still_work(db: str) -> None:
    rows = open_reader(db).query(
        "select length(randomblob(16)) n, upper(name) u, json_object('a', 1) j,"
        " sqlite_version() is not null v from feeds order by name limit 1"
    )
    assert rows == [{"n": 16, "u": "PARTNER", "j": '{"a":1}', "v": 1}]


@pytest.mark.parametrize(
    "sql", ["select 1; select 2", "select 1;; ", "select 1; delete from items"]
)
def test_one_statement_at_a_time(db: str, sql: str) -> None:
    assert one_line(run(db, sql)).startswith("aggregator: one statement at a time: ")


def test_a_trailing_semicolon_is_one_statement(db: str) -> None:
    result = run(db, "select count(*) as n from feeds;", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "n\n2\n"


def test_attach_and_writes_are_still_refused(db: str, tmp_path: Path) -> None:
    line = one_line(run(db, f"attach '{tmp_path}/x.db' as x"))
    assert "ATTACH and VACUUM INTO" in line
    assert "readonly" in one_line(run(db, "delete from feeds"))
    assert not (tmp_path / "x.db").exists()


def test_query_errors_are_store_errors(db: str) -> None:
    """The web view catches StoreError; both refusals are ones."""
    assert issubclass(QueryRefused, StoreError)
    assert issubclass(QueryInterrupted, StoreError)


# -- Ctrl-C, as a person sends it to a real process ------------------------------------------


def _poll(probe: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _opened(pid: int, path: str) -> bool:
    real = os.path.realpath(path)
    try:
        return any(
            os.readlink(f"/proc/{pid}/fd/{fd}") == real for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:  # an fd closed between listing and reading it
        return False


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_ctrl_c_stops_a_running_query_with_exit_130(db: str, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--db", db, "query", FOREVER, "--timeout", "1h"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The command catches Ctrl-C before it opens the store, so the store open in the
        # process means it is listening; then it spends CPU on nothing but the query.
        _poll(lambda: process.poll() is not None or _opened(process.pid, db), what="the store")
        assert process.poll() is None, process.communicate()
        opened_at = _cpu_s(process.pid)
        _poll(lambda: _cpu_s(process.pid) > opened_at + 0.3, what="the query to run")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert stderr == "aggregator: interrupted: the query was stopped\n"
    assert stdout == ""
