"""Messages that say what is really going on, each through the command line: who holds a
feed, a missing feeds.yaml, the advice column, the reload warning, refused writes, a store
the file system will not let us open, CSV headers, and Ctrl-C.

Real stores, a real HTTP server on 127.0.0.1, and real processes where another process is
the point (a second `fetch`, the daemon, SIGINT).
"""

from __future__ import annotations

import csv
import ctypes
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from daemon_helpers import config_text, query, scalar, spawn, terminate, wait_for
from feeds_builder import rss
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.cli import cli
from aggregator.schedule.leases import HOST, describe
from aggregator.store import Store

PROJECT = Path(__file__).resolve().parents[1]


def one_item(server: LocalServer, name: str) -> str:
    return rss([{"title": f"{name} story", "link": server.url(f"/p/{name}"), "guid": name}])


def feeds_yaml(path: Path, feeds: dict[str, str], extra: str = "") -> Path:
    path.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\n  extract: false\n"
        f"{extra}feeds:\n"
        + "".join(f"  - name: {name}\n    url: {url}\n" for name, url in feeds.items()),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def held(server: LocalServer) -> Iterator[threading.Event]:
    """`/slow.xml` holds its response open until the event is set (at the latest when the
    test ends, so the server can stop)."""
    release = threading.Event()

    def hold(_request: RecordedRequest, _writer: ResponseWriter) -> None:
        release.wait(60)

    server.add_handler("/slow.xml", hold)
    try:
        yield release
    finally:
        release.set()


def aggregator(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )


def lease_holder(db: Path, feed: str) -> str | None:
    value = scalar(db, "SELECT lease_holder FROM feeds WHERE name = ?", feed)
    return None if value is None else str(value)


# -- 1. who is refreshing a feed ----------------------------------------------------------


@pytest.mark.parametrize("holder", ["fetch", "run"])
def test_a_feed_another_process_holds_names_that_process(
    holder: str, server: LocalServer, held: threading.Event, tmp_path: Path
) -> None:
    server.add("/quick.xml", one_item(server, "quick"))
    db = tmp_path / "news.db"
    process: subprocess.Popen[bytes]
    if holder == "run":
        config = tmp_path / "feeds.yaml"
        config.write_text(config_text([("slow", server.url("/slow.xml"))]))
        process = spawn(config, db)
        command = "aggregator run"
    else:
        config = feeds_yaml(tmp_path / "feeds.yaml", {"slow": server.url("/slow.xml")})
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), "--db", str(db), "fetch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=PROJECT,
        )
        command = "aggregator fetch"
    try:
        wait_for(lambda: lease_holder(db, "slow"), what=f"`{command}` to lease the feed")
        second = feeds_yaml(
            tmp_path / "second.yaml",
            {"slow": server.url("/slow.xml"), "quick": server.url("/quick.xml")},
        )
        result = CliRunner().invoke(cli, ["--config", str(second), "--db", str(db), "fetch"])
    finally:
        held.set()
        terminate(process)
    assert result.exit_code == 0, result.output  # skipped is no failure
    assert (
        f"slow: skipped: `{command}` (pid {process.pid}) is refreshing it right now;"
        " it is left to that one"
    ) in result.stderr
    assert "the daemon" not in result.output
    assert "quick: 1 entries, 1 new" in result.stderr


@pytest.mark.parametrize(
    ("holder", "said"),
    [
        (f"{HOST}:4242:fetch:ab12cd", "`aggregator fetch` (pid 4242)"),
        (f"{HOST}:17:daemon:ab12cd", "`aggregator run` (pid 17)"),
        (f"{HOST}:99:retry:ab12cd", "`aggregator retry` (pid 99)"),
        ("news-2.example:17:daemon:ab12cd", "`aggregator run` (pid 17 on news-2.example)"),
        ("something else", "another aggregator process (something else)"),
    ],
)
def test_a_holder_is_described_by_its_command(holder: str, said: str) -> None:
    assert describe(holder) == said


# -- 2. a missing feeds.yaml ----------------------------------------------------------------


def test_a_named_config_that_is_missing_is_said_to_be_missing(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "feeds.yaml"
    by_option = CliRunner().invoke(cli, ["--config", str(missing), "items"])
    by_env = CliRunner().invoke(cli, ["items"], env={"AGGREGATOR_CONFIG": str(missing)})
    for result in (by_option, by_env):
        assert result.exit_code == 2
        assert f"{missing}: file not found" in result.stderr
        assert "--config PATH" in result.stderr
        assert "AGGREGATOR_CONFIG" in result.stderr
        assert "no database" not in result.stderr
        assert "aggregator fetch` first" not in result.stderr


def test_the_default_config_missing_is_said_to_be_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGATOR_CONFIG", raising=False)
    monkeypatch.delenv("AGGREGATOR_DB", raising=False)
    result = CliRunner().invoke(cli, ["items"])
    fetched = CliRunner().invoke(cli, ["fetch"])
    assert result.exit_code == 2
    assert f"feeds.yaml: file not found (looked for {tmp_path / 'feeds.yaml'})" in result.stderr
    assert "--db PATH" in result.stderr  # a store can still be read without feeds.yaml
    assert fetched.exit_code == 2
    assert "feeds.yaml: file not found" in fetched.stderr


# -- 3. the advice column ---------------------------------------------------------------------


def advice_after_fetch(server: LocalServer, tmp_path: Path) -> dict[str, str]:
    server.add("/missing.xml", "no such page", status=404, content_type="text/plain")
    server.add("/gone.xml", "", status=410)
    server.add("/broken.xml", "oops", status=500, content_type="text/plain")
    server.add("/closed.xml", "", status=403, content_type="text/plain")
    server.add("/page.xml", "<!doctype html><html><body>hi</body></html>", content_type="text/html")
    names = ("missing", "gone", "broken", "closed", "page")
    config = feeds_yaml(tmp_path / "feeds.yaml", {n: server.url(f"/{n}.xml") for n in names})
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
    assert CliRunner().invoke(cli, [*base, "fetch"]).exit_code == 1
    rows = json.loads(CliRunner().invoke(cli, [*base, "feeds", "--json"]).stdout)
    return {row["name"]: row["advice"] for row in rows}


def test_advice_is_whole_sentences_that_never_repeat(server: LocalServer, tmp_path: Path) -> None:
    advice = advice_after_fetch(server, tmp_path)
    assert advice["missing"] == (
        "The server says the feed does not exist (404); check the URL. The site may have"
        " moved its feed: find the new address on the site and put it in feeds.yaml."
    )
    for name, text in advice.items():
        sentences = re.split(r"(?<=[.!?]) ", text)
        assert len(sentences) >= 2, (name, text)
        for sentence in sentences:
            assert sentence[0].isupper(), (name, sentence)
            assert sentence.endswith("."), (name, sentence)
        words = re.findall(r"[\w.'-]+", text.lower())
        phrases = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
        repeated = {p for p in phrases if phrases.count(p) > 1}
        assert not repeated, (name, text, repeated)


# -- 4. the reload warning names feeds.yaml's keys -------------------------------------------


def test_the_reload_warning_names_yaml_keys(server: LocalServer, tmp_path: Path) -> None:
    server.add("/wire.xml", one_item(server, "wire"))
    config = tmp_path / "feeds.yaml"
    feeds = [("wire", server.url("/wire.xml"))]
    config.write_text(config_text(feeds))
    db, log = tmp_path / "news.db", tmp_path / "daemon.log"
    daemon = spawn(config, db, "--log-format", "json", log=log)

    def warning() -> dict[str, object] | None:
        events = [json.loads(line) for line in log.read_text().splitlines() if line]
        return next((e for e in events if "change only on restart" in e["message"]), None)

    try:
        wait_for(lambda: query(db, "SELECT 1 FROM fetches"), what="the first fetch")
        config.write_text(config_text(feeds, timeout="7s", host_gap="1s"))
        daemon.send_signal(signal.SIGHUP)
        found = wait_for(warning, what="the reload warning")
    finally:
        terminate(daemon)
    assert found is not None
    assert found["message"] == (
        "settings that change only on restart, kept as they were until then: timeout, host_gap"
    )


# -- 5. a query that would write ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "news.db")
    Store.open(path).close()
    return path


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        (
            "pragma journal_mode=delete",
            "`PRAGMA journal_mode = delete` would change the store's settings and was refused",
        ),
        (
            "PRAGMA main.locking_mode = exclusive",
            "`PRAGMA locking_mode = exclusive` would change the store's settings",
        ),
        ("pragma user_version = 7", "`PRAGMA user_version = 7` would change the store's"),
        ("pragma wal_checkpoint(truncate)", "`PRAGMA wal_checkpoint` would write to the store"),
        ("delete from feeds", "the query would write to the store and was refused"),
    ],
)
def test_a_query_that_would_write_is_refused_saying_so(store: str, sql: str, said: str) -> None:
    result = CliRunner().invoke(cli, ["--db", store, "query", sql])
    assert result.exit_code == 2
    assert said in result.stderr
    assert "disk I/O error" not in result.stderr
    conn = sqlite3.connect(store)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        conn.close()


def test_pragmas_that_read_still_answer(store: str) -> None:
    runner = CliRunner()
    mode = runner.invoke(cli, ["--db", store, "query", "pragma journal_mode", "--format", "json"])
    assert json.loads(mode.stdout) == [{"journal_mode": "wal"}]
    info = runner.invoke(
        cli, ["--db", store, "query", "pragma table_info(items)", "--format", "json"]
    )
    assert "title" in {column["name"] for column in json.loads(info.stdout)}


# -- 6. a store the file system will not let us use ------------------------------------------

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _without_override() -> None:
    """In the child before exec: root without the capabilities that ignore file modes, so a
    folder's mode binds it as it binds any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def as_a_user(*args: str) -> subprocess.CompletedProcess[str]:
    """`aggregator ARGS` as a process that file modes apply to (root drops its override)."""
    preexec: Callable[[], None] | None = _without_override if os.geteuid() == 0 else None
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        preexec_fn=preexec,  # only prctl runs in the child before exec
        timeout=60,
    )


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a store, made read-only for the test."""
    folder = tmp_path / "desk"
    folder.mkdir()
    Store.open(str(folder / "news.db")).close()
    probe = as_a_user("--version")  # reading the store now would leave its -shm behind
    if probe.returncode != 0:
        pytest.skip(f"cannot run aggregator with file modes applied: {probe.stderr}")
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


def test_a_store_in_a_read_only_folder_says_why(locked: Path) -> None:
    result = as_a_user("--db", str(locked / "news.db"), "items")
    assert result.returncode == 2
    assert f"the folder {locked} is not writable by " in result.stderr
    assert "-wal and -shm files" in result.stderr
    assert "chmod u+w" in result.stderr


def test_a_new_store_in_a_read_only_folder_says_why(locked: Path, tmp_path: Path) -> None:
    config = feeds_yaml(tmp_path / "feeds.yaml", {"wire": "https://wire.example/rss"})
    new = as_a_user("--config", str(config), "--db", str(locked / "new.db"), "fetch")
    assert new.returncode == 2
    assert f"the folder {locked} is not writable by " in new.stderr
    assert "so the store cannot be made in it" in new.stderr
    below = as_a_user("--config", str(config), "--db", str(locked / "sub" / "new.db"), "fetch")
    assert below.returncode == 2
    assert f"its folder {locked / 'sub'} does not exist, and {locked} is not writable" in (
        below.stderr
    )


def test_a_read_only_store_file_says_why(locked: Path, tmp_path: Path) -> None:
    locked.chmod(0o755)
    (locked / "news.db").chmod(0o444)
    config = feeds_yaml(tmp_path / "feeds.yaml", {"wire": "https://wire.example/rss"})
    result = as_a_user("--config", str(config), "--db", str(locked / "news.db"), "fetch")
    assert result.returncode == 2
    assert f"the file {locked / 'news.db'} is not writable by " in result.stderr
    # Reading needs no write access to the file itself.
    assert as_a_user("--db", str(locked / "news.db"), "items").returncode == 0


def test_a_store_whose_folder_is_missing_says_so(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "news.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "items"])
    assert result.exit_code == 2
    assert f"no database at {db} (its folder {db.parent} does not exist either)" in result.stderr


# -- 7. CSV of no rows ----------------------------------------------------------------------------


def test_csv_of_no_rows_still_has_its_header(server: LocalServer, tmp_path: Path) -> None:
    server.add("/wire.xml", one_item(server, "wire"))
    config = feeds_yaml(tmp_path / "feeds.yaml", {"wire": server.url("/wire.xml")})
    runner = CliRunner()
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
    assert runner.invoke(cli, [*base, "fetch"]).exit_code == 0
    for command in (["items"], ["search", "wire"], ["stories"]):
        some = runner.invoke(cli, [*base, *command, "--format", "csv"]).stdout
        none = runner.invoke(cli, [*base, *command, "--since", "2999-01-01", "--format", "csv"])
        assert none.exit_code == 0
        header = next(csv.reader(io.StringIO(some)))
        assert len(header) > 3
        assert none.stdout == ",".join(header) + "\n", command
    empty = runner.invoke(
        cli, [*base, "query", "select id, title from items where 0", "--format", "csv"]
    )
    assert empty.stdout == "id,title\n"


# -- 8. Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_on_fetch_exits_130_saying_what_was_kept(
    server: LocalServer, held: threading.Event, tmp_path: Path
) -> None:
    server.add("/quick.xml", one_item(server, "quick"))
    config = feeds_yaml(
        tmp_path / "feeds.yaml",
        {"quick": server.url("/quick.xml"), "slow": server.url("/slow.xml")},
    )
    db = tmp_path / "news.db"
    process = aggregator("--config", str(config), "--db", str(db), "fetch")
    try:
        assert process.stderr is not None
        wait_for(lambda: query(db, "SELECT 1 FROM fetches"), what="the quick feed's fetch")
        # Committed; its line (one per finished feed, off a terminal) follows at once.
        assert process.stderr.readline() == "quick: 1 entries, 1 new\n"
        wait_for(lambda: server.hits("/slow.xml"), what="the slow feed's request")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        held.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert err == (
        "aggregator: interrupted (Ctrl-C): 1 of 2 feeds had finished and what they fetched is"
        " stored; the 1 still in flight stored nothing and stay due (run `aggregator fetch`"
        " again)\n"
    )
    assert out == ""
    assert query(db, "SELECT feed, outcome FROM fetches") == [("quick", "ok")]
    assert query(db, "SELECT count(*) FROM feeds WHERE lease_holder IS NOT NULL") == [(0,)]
