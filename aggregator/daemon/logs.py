"""The daemon's logs: stdlib logging, readable on a terminal, one JSON object a line for
collectors (`aggregator run --log-format json`).

Log calls carry their facts as `extra={...}` (feed, outcome, new_items, ...): the human
format appends them as key=value, the JSON format makes them keys.

Messages and facts quote what servers sent (an error naming a Content-Type, a feed's title),
so neither format lets a control character through raw: the human one escapes the message
and every value (`sanitize.terminal_text`: ESC as `\\x1b`, a newline as `\\n`, so one
event stays one line); the JSON one writes them as JSON escapes (`sanitize.escaped_json`),
which a collector decodes back to the exact text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from aggregator.sanitize import escaped_json, terminal_text

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
FORMATS = ("human", "json")


def facts(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(facts(record))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return escaped_json(json.dumps(entry, default=str, ensure_ascii=False))


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{terminal_text(str(k))}={terminal_text(str(v))}" for k, v in facts(record).items()
        )
        line = f"{_time(record)} {record.levelname:<7} {terminal_text(record.getMessage())}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:  # its lines stay lines; anything else in them is escaped
            trace = terminal_text(self.formatException(record.exc_info), multiline=True)
            line = f"{line}\n{trace}"
        return line


def setup_logging(
    fmt: str = "human", *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route every logger to `stream` (stderr) in `fmt`; quiet the chatty libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job run at INFO: a tick a few seconds apart would drown the log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
