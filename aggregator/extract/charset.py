"""Bytes of an HTML page to text, trusting labels only as far as the bytes agree.

Order: byte-order mark, the HTTP header's charset, a `<meta>` (or XML) declaration in the first
4 KiB, charset_normalizer's guess, and finally UTF-8 with replacement characters. Bytes that are
valid UTF-8 beyond ASCII are UTF-8 whatever the labels say, and a label that most of the
non-ASCII bytes contradict is skipped: both are how mislabelled pages show themselves. Labels are
mapped the way browsers map them (WHATWG Encoding Standard): "latin1" means windows-1252,
"gb2312" means GB18030, and so on, because pages are written for browsers.
"""

from __future__ import annotations

import codecs
import re

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_PRESCAN_BYTES = 4096
# <meta charset=x>, <meta http-equiv=content-type content="text/html; charset=x">,
# or an XHTML page's <?xml encoding=x?>
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)|<\?xml[^>]*?encoding\s*=\s*["']([a-z0-9_.:-]+)""",
    re.IGNORECASE,
)
_WINDOWS_CODEPAGE = re.compile(r"^(?:x-)?(?:windows|win|cp|ms)[-_]?(\d{3,4})$")
# What browsers actually use for these labels (WHATWG), or spellings Python does not know.
_ALIASES = {
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "koi8r": "koi8-r",
    "koi8u": "koi8-u",
    "x-mac-cyrillic": "mac-cyrillic",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "unicode-1-1-utf-8": "utf-8",
}
# A label that is known but never honoured: UTF-7 hides markup from sanitisers.
_REFUSED = frozenset({"utf-7"})
_STRAY_SHARE = 0.05


def codec_for(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None if it is unknown or unusable."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if match := _WINDOWS_CODEPAGE.match(name):
        name = f"cp{match.group(1)}"
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not _is_text_encoding(info.name) or info.name in _REFUSED:
        return None
    return info.name


def _is_text_encoding(codec: str) -> bool:
    """False for the codecs that are no charset, though codecs.lookup finds them: binary
    transforms (base64, hex, zlib) and text transforms (rot13). bytes.decode refuses those
    with LookupError, as the codecs documentation says. The sample is not empty: an empty
    input is decoded without looking the codec up."""
    try:
        b"a".decode(codec)
    except LookupError:
        return False
    except UnicodeError:  # a charset this byte alone is not valid in (UTF-16, UTF-32)
        pass
    return True


def meta_charset(body: bytes) -> str | None:
    """The codec a page declares for itself in its first 4 KiB."""
    match = _META_CHARSET.search(body[:_PRESCAN_BYTES])
    if not match:
        return None
    label = (match.group(1) or match.group(2)).decode("ascii", "replace")
    codec = codec_for(label)
    # A UTF-16 page could not be read as ASCII to find this declaration: browsers take UTF-8.
    if codec and codec.startswith("utf-16"):
        return "utf-8"
    return codec


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        return None


def _mostly(body: bytes, codec: str) -> str | None:
    """The text if `codec` fits all but a stray few of the page's non-ASCII characters.

    A page in its declared charset with one pasted-in foreign byte is still that charset; a
    mislabelled page fails on nearly every non-ASCII character (pages labelled UTF-8 in the eval
    corpus: at most 4% against at least 78%).
    """
    if (text := _strict(body, codec)) is not None:
        return text
    text = body.decode(codec, errors="replace")
    non_ascii = sum(1 for char in text if ord(char) > 127)
    return text if text.count("\ufffd") <= _STRAY_SHARE * non_ascii else None


def _detected(body: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    return None if best is None else codec_for(best.encoding)


def decode_html(body: bytes, declared: str | None) -> str:
    """Decode a page fetched with `declared` (the Content-Type charset, if any)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace")
    as_utf8 = _strict(body, "utf-8")
    # Valid non-ASCII UTF-8 is almost never legacy-encoded text by accident, while servers
    # labelling UTF-8 pages "iso-8859-1" by default are common: these bytes beat any label.
    if as_utf8 is not None and not body.isascii():
        return as_utf8
    labels = [codec for codec in (codec_for(declared), meta_charset(body)) if codec]
    if b"\x00" not in body[:_PRESCAN_BYTES]:
        # UTF-16 markup is full of NULs (every ASCII character has one): this label is wrong.
        labels = [codec for codec in labels if not codec.startswith("utf-16")]
    for label in labels:
        if (text := _mostly(body, label)) is not None:
            return text
    if as_utf8 is not None:
        return as_utf8
    if (guess := _detected(body)) and (text := _strict(body, guess)) is not None:
        return text
    # Everything disagreed: keep the page's own word, losing only the bytes that do not fit.
    return body.decode(labels[0] if labels else "utf-8", errors="replace")
