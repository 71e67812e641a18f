"""Server text never reaches a terminal or a log raw (sanitize.terminal_text, escaped_json).

A local server puts ESC [31m, OSC 52 (clipboard), OSC 8 (hyperlink), BEL, C1 CSI (U+009B)
and a bidi override into a feed's titles, a Content-Type and a reason phrase. `aggregator
fetch`, the daemon's human and JSON logs, and `items` in every format, on a pseudo-terminal
and into a pipe, must show them as visible escapes; CSV into a pipe and parsed JSON keep the
exact data.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import PROJECT, config_text, scalar, spawn, terminate, wait_for
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.cli.tables import render
from aggregator.sanitize import escaped_json, terminal_text

ESC_RED, ESC_RESET = "\x1b[31m", "\x1b[0m"
OSC52 = "\x1b]52;c;aGVsbG8=\x07"  # sets the clipboard to "hello"
OSC8 = "\x1b]8;;http://evil.example/\x1b\\here\x1b]8;;\x1b\\"  # a disguised hyperlink
TITLE = (
    f"Red {ESC_RED}alert{ESC_RESET} clip {OSC52} link {OSC8} bell\x07 "
    "csi \x9b2J bidi \u202eevil\u202c del\x7f end"
)
# Latin-1 only in a header (the test server encodes it so): no bidi there.
CONTENT_TYPE = "text/\x1b[31mevil\x1b]52\x07\x9b2j; charset=\x1b]52;c;aGk=\x07"
REASON = "OK \x1b[31m\x9b2J\x07"
# What the server sent that a terminal would act on; the escapes Rich writes itself are SGR.
SERVER_SEQUENCES = (ESC_RED, "\x1b]", "\x07", "\x9b", "\u202e", "\u202c", "\x7f")
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
RICH_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # Rich's own styling and cursor moves
# `fetch` parses on a thread: a process pool's first job blocks the event loop while its
# forkserver imports trafilatura (seconds on a busy machine), and fetches time out meanwhile.
FETCH = ("fetch", "--workers", "0")

pytestmark = pytest.mark.slow


def assert_nothing_raw(shown: str, *, terminal: bool = False) -> None:
    """No control the server sent reaches `shown`; on a terminal, Rich's own CSI sequences
    (bold, the progress bar's cursor moves) and carriage returns (the terminal's line ends,
    the progress bar redrawn) are all the controls there are."""
    for sequence in SERVER_SEQUENCES:
        assert sequence not in shown, f"{sequence!r} reached the output raw"
    if terminal:
        shown = RICH_CSI.sub("", shown).replace("\r", "")
    found = RAW.findall(shown.replace("\n", "").replace("\t", ""))
    assert not found, f"raw controls in the output: {found!r}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain Кириллица 😀", "plain Кириллица 😀"),
        (f"{ESC_RED}red{ESC_RESET}", "\\x1b[31mred\\x1b[0m"),
        (OSC52, "\\x1b]52;c;aGVsbG8=\\x07"),
        ("csi \x9b2J", "csi \\u009b2J"),
        ("a\u202eb\u2066c\u2069", "a\\u202eb\\u2066c\\u2069"),
        ("line\nforged\r\tx\x00\x7f", "line\\nforged\\r\\tx\\x00\\x7f"),
        ("para\u2028graph", "para\\u2028graph"),
    ],
)
def test_terminal_text_makes_every_control_visible(text: str, shown: str) -> None:
    assert terminal_text(text) == shown
    assert not RAW.search(terminal_text(text))


def test_terminal_text_multiline_keeps_tab_and_newline_only() -> None:
    assert terminal_text("a\tb\nc\r\x1b", multiline=True) == "a\tb\nc\\r\\x1b"


@pytest.mark.parametrize("value", [TITLE, "\ud800 lone", "\u2028\u2029", "tab\tnl\n\x00"])
def test_escaped_json_is_the_same_data_with_no_raw_control(value: str) -> None:
    for document in (
        json.dumps({"k": value}, ensure_ascii=False),
        json.dumps([{"k": value}], ensure_ascii=False, indent=2),
    ):
        escaped = escaped_json(document)
        assert json.loads(escaped) == json.loads(document)
        assert not RAW.search(escaped.replace("\n", ""))
        assert not re.search("[\ud800-\udfff]", escaped)


def test_render_escapes_csv_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    rows = [{"id": 1, "title": TITLE, "note": None}]
    pipe, terminal = io.StringIO(), Terminal()
    render(rows, "csv", out=pipe)
    render(rows, "csv", out=terminal)
    assert list(csv.DictReader(io.StringIO(pipe.getvalue()))) == [
        {"id": "1", "title": TITLE, "note": ""}
    ]
    assert_nothing_raw(terminal.getvalue())
    assert "\\x1b[31malert" in terminal.getvalue()


# --- end to end: a hostile server, `aggregator fetch`, the daemon, `items` ---------------


def _hostile_routes(server: LocalServer) -> dict[str, str]:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"Feed {TITLE}",
        "items": [
            {"id": "1", "url": server.url("/a"), "title": TITLE, "content_text": "body"},
        ],
    }
    server.add("/titles.json", json.dumps(feed), content_type="application/feed+json")

    def odd_type(request: RecordedRequest, writer: ResponseWriter) -> None:
        writer.send_status(200, REASON)
        writer.send_header("Content-Type", CONTENT_TYPE)
        writer.end_headers()
        writer.write(b"hello, not a feed")

    server.add_handler("/type", odd_type)
    return {"titles": server.url("/titles.json"), "odd-type": server.url("/type")}


def _config(tmp_path: Path, server: LocalServer) -> Path:
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text(_hostile_routes(server).items()))
    return config


def _cli(config: Path, *args: str, terminal: bool = False) -> tuple[int, str, str]:
    """`python -m aggregator --config CONFIG ARGS`: stdout and stderr into pipes, or both on
    one pseudo-terminal (then returned as stdout)."""
    command = [sys.executable, "-m", "aggregator", "--config", str(config), *args]
    # Wide enough that no title is cut short: the escapes must show whole.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1", "TERM": "xterm"}
    env["COLUMNS"] = "1000"
    if not terminal:
        done = subprocess.run(
            command, capture_output=True, cwd=PROJECT, env=env, timeout=60, check=False
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, cwd=PROJECT, env=env
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(10)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, b"".join(chunks).decode(), ""


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """feeds.yaml of the hostile feeds, fetched once into pipes (checked on the way), for
    every `items` format to read."""
    server = LocalServer().start()
    try:
        config = _config(tmp_path_factory.mktemp("hostile"), server)
        code, out, err = _cli(config, *FETCH)
        assert code == 1  # odd-type is no feed
        assert_nothing_raw(out + err)
        assert "odd-type: not_a_feed: the address serves text/\\x1b[31mevil\\x1b]52\\x07" in err
        assert "\\u009b2j content, not a feed" in err
        yield config
    finally:
        server.stop()


def test_fetch_on_a_terminal_shows_no_raw_control(server: LocalServer, tmp_path: Path) -> None:
    code, shown, _ = _cli(_config(tmp_path, server), *FETCH, terminal=True)
    assert code == 1
    assert_nothing_raw(shown, terminal=True)
    assert "not_a_feed" in shown


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "ndjson"])
@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_items_never_write_a_raw_control(fetched: Path, fmt: str, terminal: bool) -> None:
    code, shown, _ = _cli(fetched, "items", "--format", fmt, terminal=terminal)
    assert code == 0
    if fmt != "csv" or terminal:  # CSV into a pipe or file is the raw data
        assert_nothing_raw(shown, terminal=terminal)
    text = shown.replace("\r\n", "\n")
    if fmt == "json":
        assert json.loads(text)[0]["title"] == TITLE  # JSON escapes: the exact data
    elif fmt == "ndjson":
        assert json.loads(text.splitlines()[0])["title"] == TITLE
    elif fmt == "csv" and not terminal:
        assert next(csv.DictReader(io.StringIO(text)))["title"] == TITLE  # raw data
    else:  # a table anywhere, CSV on a terminal: visible escapes
        assert terminal_text(TITLE) in text


def test_feeds_table_escapes_a_stored_error(fetched: Path) -> None:
    code, shown, _ = _cli(fetched, "feeds", terminal=True)
    assert code == 0
    assert_nothing_raw(shown, terminal=True)
    assert "not_a_feed" in shown or "serves" in shown


@pytest.mark.parametrize("log_format", ["human", "json"])
def test_daemon_logs_escape_what_servers_send(
    server: LocalServer, tmp_path: Path, log_format: str
) -> None:
    config = _config(tmp_path, server)
    db, log = tmp_path / "news.db", tmp_path / "daemon.log"
    daemon = spawn(config, db, "--log-format", log_format, log=log)
    try:
        for feed in ("titles", "odd-type"):
            wait_for(
                lambda feed=feed: scalar(db, "SELECT count(*) FROM fetches WHERE feed = ?", feed),
                what=f"a fetch of {feed}",
            )
        assert terminate(daemon) == 0
    finally:
        terminate(daemon)
    text = log.read_text(encoding="utf-8")
    assert_nothing_raw(text)
    if log_format == "json":
        events = [json.loads(line) for line in text.splitlines()]
        failure = next(e for e in events if e.get("feed") == "odd-type")
        assert "the address serves text/\x1b[31mevil\x1b]52\x07\x9b2j content" in failure["message"]
    else:
        assert "odd-type: the address serves text/\\x1b[31mevil\\x1b]52\\x07\\u009b2j" in text
        lines = [line for line in text.splitlines() if "odd-type" in line]
        assert all(re.match(r"\d{4}-\d\d-\d\dT", line) for line in lines)  # one line an event


def test_human_log_escapes_message_and_every_fact() -> None:
    import logging

    from aggregator.daemon.logs import HumanFormatter, JsonFormatter

    record = logging.LogRecord(
        "aggregator.daemon", logging.WARNING, __file__, 1, "%s: %s", ("wire", TITLE), None
    )
    record.feed = "wire\n2026-01-01T00:00:00.000Z INFO    forged"
    record.title = TITLE
    human = HumanFormatter().format(record)
    assert "\n" not in human
    assert_nothing_raw(human)
    assert "feed=wire\\n2026-01-01" in human
    assert f"title={terminal_text(TITLE)}" in human
    document = JsonFormatter().format(record)
    assert_nothing_raw(document)
    entry = json.loads(document)
    assert entry["message"] == f"wire: {TITLE}"
    assert entry["title"] == TITLE
    assert entry["feed"] == record.feed
