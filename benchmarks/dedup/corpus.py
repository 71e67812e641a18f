"""Real text from ../shared/corpora: article bodies (extraction-eval, extracted by our own
extract_article) and feed items (feed-snapshots: title, summary, feed, first seen). Both are
cached in benchmarks/results/ since extracting 990 pages takes a while, under a key made of
the corpus files and the code that reads them: a change to the parser or the extractor
builds them again rather than measuring today's dedup on yesterday's texts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path
from urllib.parse import urlsplit

PROJECT = Path(__file__).resolve().parents[2]
CORPORA = PROJECT.parent / "shared" / "corpora"
CACHE = PROJECT / "benchmarks" / "results"
# What turns corpus files into the rows cached here: any change to it makes new rows.
READERS = (
    "aggregator/parse",
    "aggregator/extract",
    "aggregator/text.py",
    "aggregator/sanitize.py",
    "aggregator/urls.py",
)


@dataclass(frozen=True)
class Article:
    url: str
    title: str
    text: str
    host: str


@dataclass(frozen=True)
class FeedItem:
    feed: str
    seen_at: str  # ISO 8601 UTC: the snapshot that first listed it
    title: str
    summary: str
    link: str


def _code_digest() -> str:
    sources: list[Path] = []
    for name in READERS:
        path = PROJECT / name
        sources += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return "".join(hashlib.sha1(p.read_bytes(), usedforsecurity=False).hexdigest() for p in sources)


def _cached(name: str, files: list[Path], build: object) -> list[dict[str, str]]:
    key = "".join(f"{f.name}:{f.stat().st_size};" for f in files) + _code_digest()
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]
    path = CACHE / f"dedup-{name}-{digest}.json"
    if path.is_file():
        data: list[dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
        return data
    rows = build()  # type: ignore[operator]
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return rows  # type: ignore[no-any-return]


def _extract(job: tuple[str, str]) -> dict[str, str] | None:
    from aggregator.errors import ExtractError
    from aggregator.extract.article import extract_article

    url, path = job
    try:
        article = extract_article(Path(path).read_bytes(), url=url)
    except ExtractError:
        return None
    host = urlsplit(url).hostname or ""
    return asdict(Article(url, article.title or "", article.text, host))


def articles(corpora: Path = CORPORA) -> list[Article]:
    """Every extraction-eval page our extractor finds an article on, in a fixed order."""
    folder = corpora / "extraction-eval"
    data = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))
    jobs: list[tuple[str, str]] = []
    for url, item in sorted(data.items()):
        for sub in ("eval", "cache"):
            path = folder / sub / item["file"]
            if path.is_file() and path.stat().st_size:
                jobs.append((url, str(path)))
                break

    def build() -> list[dict[str, str]]:
        with Pool(2) as pool:
            return [r for r in pool.map(_extract, jobs, chunksize=8) if r is not None]

    rows = _cached("articles", [Path(p) for _, p in jobs], build)
    return [Article(**r) for r in rows]


def feed_items(corpora: Path = CORPORA) -> list[FeedItem]:
    """Each feed-snapshots entry once, as first seen (feed, GUID or link)."""
    from aggregator.errors import AggregatorError
    from aggregator.parse.feed import parse_feed

    folder = corpora / "feed-snapshots"
    files = sorted(folder.glob("*/*.xml"))

    def build() -> list[dict[str, str]]:
        seen: dict[tuple[str, str], dict[str, str]] = {}
        for path in files:
            feed = path.parent.name
            s = path.name[:16]  # 20200501T015505Z
            seen_at = f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}Z"
            try:
                parsed = parse_feed(
                    path.read_bytes(),
                    url=f"https://{feed}.example/",
                    content_type=None,
                    charset=None,
                    max_entries=1000,
                )
            except AggregatorError:
                continue  # a truncated snapshot or an error page saved in place of the feed
            for entry in parsed.entries:
                key = (feed, entry.guid or entry.link or entry.title)
                if entry.link and key not in seen:
                    seen[key] = asdict(
                        FeedItem(feed, seen_at, entry.title, entry.summary, entry.link)
                    )
        return list(seen.values())

    return [FeedItem(**r) for r in _cached("feed-items", files, build)]
