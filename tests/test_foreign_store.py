"""A database from elsewhere: random bytes, a text file, a truncated store, another
program's database, a store migrated by a newer aggregator. The writer refuses each before
it writes anything; readers refuse what they cannot read and warn about a newer store. Each
refusal is one line and exit 2, and the file's bytes are the same afterwards."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aggregator.cli import cli
from aggregator.errors import StoreError
from aggregator.store import Store, open_reader


def real_store(path: Path) -> Path:
    store = Store.open(str(path))
    for n in range(400):
        store.execute(
            "INSERT INTO feeds (name, url, added_at) VALUES (?, ?, ?)",
            [f"feed-{n}", f"https://example.com/{'x' * 200}/{n}.xml", "2026-11-27T19:00:00Z"],
        )
    store.close()
    assert not Path(f"{path}-wal").exists()  # closing the writer checkpointed everything
    return path


def random_bytes(path: Path) -> Path:
    path.write_bytes(os.urandom(16384))
    return path


def text_file(path: Path) -> Path:
    path.write_text("name,url\nwire,https://example.com/wire.xml\n" * 50)
    return path


def truncated_store(path: Path) -> Path:
    data = real_store(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def other_program(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()
    return path


def newer_store(path: Path) -> Path:
    real_store(path)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES"
        " ('aggregator', '0006_x', '2027-01-01'), ('aggregator', '0007_y', '2027-01-02')"
    )
    conn.commit()
    conn.close()
    return path


UNREADABLE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "random bytes": (random_bytes, "file is not a database"),
    "a text file": (text_file, "file is not a database"),
    "a truncated store": (truncated_store, "database disk image is malformed"),
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A feed that is allowed but unreachable: nothing listens on port 9 of 127.0.0.1."""
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\n  timeout: 2s\nfeeds:\n"
        "  - name: nowhere\n    url: http://127.0.0.1:9/feed.xml\n"
    )
    return path


def invoke(config: Path, db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "--db", str(db), *args])


def refused(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("kind", UNREADABLE)
@pytest.mark.parametrize("command", ["feeds", "items", "fetch", "query"])
def test_an_unreadable_file_is_one_line_exit_2_and_left_as_it_was(
    tmp_path: Path, config: Path, kind: str, command: str
) -> None:
    make, said = UNREADABLE[kind]
    db = make(tmp_path / "news.db")
    before = db.read_bytes()
    args = [command, "select 1"] if command == "query" else [command]
    line = refused(invoke(config, db, *args))
    assert said in line
    assert f"sqlite3 {db} .recover > recovered.sql" in line
    assert "restore a backup" in line
    assert db.read_bytes() == before


@pytest.mark.parametrize("kind", UNREADABLE)
def test_the_writer_and_readers_refuse_an_unreadable_file(tmp_path: Path, kind: str) -> None:
    make, said = UNREADABLE[kind]
    db = make(tmp_path / "news.db")
    before = db.read_bytes()
    with pytest.raises(StoreError, match=said) as raised:
        Store.open(str(db))
    assert ".recover" in str(raised.value)
    assert "\n" not in str(raised.value)
    with pytest.raises(StoreError, match=said):
        open_reader(str(db))
    assert db.read_bytes() == before


@pytest.mark.parametrize("command", ["feeds", "items", "fetch"])
def test_another_programs_database_is_not_a_store(
    tmp_path: Path, config: Path, command: str
) -> None:
    db = other_program(tmp_path / "news.db")
    before = db.read_bytes()
    line = refused(invoke(config, db, command))
    assert "is a SQLite database but not an aggregator store" in line
    with pytest.raises(StoreError, match="not an aggregator store"):
        Store.open(str(db))
    assert db.read_bytes() == before
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["invoices"]
    conn.close()


NEWER = (
    "was written by a newer aggregator (it has migrations 0006_x, 0007_y that this version"
    " does not know)"
)


def test_the_writer_refuses_a_newer_store_before_any_write(tmp_path: Path, config: Path) -> None:
    db = newer_store(tmp_path / "news.db")
    before = db.read_bytes()
    with pytest.raises(StoreError, match=r"newer aggregator .* 0006_x, 0007_y") as raised:
        Store.open(str(db))
    assert str(raised.value).endswith("use that version, or restore a backup")
    line = refused(invoke(config, db, "fetch"))
    assert NEWER in line
    assert line.endswith("use that version, or restore a backup")
    assert db.read_bytes() == before
    conn = sqlite3.connect(db)  # sync and leases changed nothing
    assert conn.execute("SELECT count(*) FROM feeds WHERE name = 'nowhere'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM fetches").fetchone() == (0,)
    conn.close()


@pytest.mark.parametrize("command", ["feeds", "items"])
def test_readers_read_a_newer_store_with_a_warning(
    tmp_path: Path, config: Path, command: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading cannot change the file and the tables are only ever added to, so readers
    answer (an editor can still look while the right version is put back) and warn."""
    db = newer_store(tmp_path / "news.db")
    before = db.read_bytes()
    args = ["--json"] if command == "feeds" else ["--format", "json"]
    with caplog.at_level(logging.WARNING, logger="aggregator.store"):
        result = invoke(config, db, command, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("[")
    assert any(NEWER in r.getMessage() for r in caplog.records)
    assert db.read_bytes() == before


def test_the_reader_warning_is_one_line_on_stderr(tmp_path: Path) -> None:
    db = newer_store(tmp_path / "news.db")
    before = db.read_bytes()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--db",
            str(db),
            "query",
            "select count(*) n from feeds",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"aggregator: warning: {db} {NEWER}; reading it anyway,"
        " but what that version added may be missing here"
    ]
    assert "400" in result.stdout
    assert db.read_bytes() == before


def test_an_older_store_is_still_migrated(tmp_path: Path) -> None:
    db = real_store(tmp_path / "news.db")
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0005_publishing'")
    conn.execute("DROP TABLE feed_tags")
    conn.execute("ALTER TABLE items DROP COLUMN summary_html")
    conn.commit()
    conn.close()
    store = Store.open(str(db))
    assert store.execute("SELECT count(*) FROM feed_tags") == [(0,)]
    store.close()


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    db.write_bytes(b"")
    Store.open(str(db)).close()
    assert open_reader(str(db)).query("SELECT count(*) AS n FROM feeds") == [{"n": 0}]


def test_a_first_start_killed_before_its_first_migration_is_still_a_store(tmp_path: Path) -> None:
    """kill -9 after the migrations table was made but before 0001 committed leaves a file
    with that one, empty, table: the next start migrates it (tests/test_crash.py found it)."""
    path = tmp_path / "news.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, name TEXT,"
        " applied_at TEXT)"
    )
    conn.commit()
    conn.close()
    store = Store.open(str(path))
    assert store.execute("SELECT count(*) FROM feeds") == [(0,)]
    store.close()
