"""feeds.yaml as lines: the layout of its feeds list (indentation, dashes), new entries
written in it, the file replaced atomically. Used by `editing`."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from aggregator.errors import UsageError


class WriteFailed(UsageError):
    """feeds.yaml (or an exported file) could not be written; it is unchanged."""


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it (fsync, then rename), so a
    reader sees the old file or the new one. A symbolic link is followed: the file it
    points at is replaced, not the link. Keeps the file's mode (0644 for a new file)."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    except OSError as exc:
        raise WriteFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    temporary: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        os.replace(temporary, target)
        temporary = None
        _sync_folder(target.parent)
    except OSError as exc:
        raise WriteFailed(f"cannot write {path}: {exc.strerror or exc}; it is unchanged") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """The rename itself survives a power cut only once the folder is on disk."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def round_trip_yaml() -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never fold a long URL onto a second line
    return rt


def split_lines(text: str) -> list[str]:
    """The file's lines, each with its line break: only \\n ends a line in YAML (a U+2028
    in a title does not, as str.splitlines would have it)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def no_document(text: str) -> bool:
    return all(blank_or_comment(line) or line.strip() == "---" for line in text.splitlines())


def blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def lay_out(rt: YAML, document: CommentedMap, lines: list[str]) -> None:
    """Indent new entries as the file does: its settings' indent, its list's dash and keys.
    Without examples, as the README writes feeds.yaml: two spaces, dashes indented."""
    mapping = 2
    for key, value in document.items():
        if isinstance(value, CommentedMap) and len(value) > 0 and not value.fa.flow_style():
            mapping = max(1, value.lc.col - document.lc.key(key)[1])
            break
    sequence, offset = mapping + 2, mapping
    feeds = document.get("feeds")
    if isinstance(feeds, CommentedSeq) and len(feeds) > 0 and not feeds.fa.flow_style():
        line, column = feeds.lc.item(0)
        dash = lines[line].rfind("-", 0, column)
        if dash >= 0:
            sequence, offset = column, dash
    rt.indent(mapping=mapping, sequence=max(sequence, offset + 2), offset=offset)


def entry_lines(rt: YAML, entry: CommentedMap, newline: str) -> list[str]:
    """`entry` as the lines of a feeds list entry, in `rt`'s layout."""
    out = io.StringIO()
    rt.dump({"feeds": [entry]}, out)
    return [line.rstrip("\r\n") + newline for line in out.getvalue().splitlines()[1:]]


def spelled(value: str) -> str:
    """A string as feeds.yaml must spell it. ruamel.yaml writes YAML 1.2, where `yes`, `on`
    or `0755` are plain text; the loader reads YAML 1.1, where they are not: quoted then."""
    try:
        plain = yaml.safe_load(value) == value
    except yaml.YAMLError:
        plain = False
    return value if plain else SingleQuotedScalarString(value)
