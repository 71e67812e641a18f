"""One exception tree for the whole project.

Library errors (httpx, feedparser, trafilatura, sqlite) are translated into these at the
module that meets them; nothing above `fetch` imports httpx. Each error carries an `outcome`
(a stable word recorded in `fetches.outcome`) and a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.enums import Outcome


class AggregatorError(Exception):
    """Base of every error this project raises on purpose."""

    outcome = Outcome.ERROR


class ConfigError(AggregatorError):
    """feeds.yaml is wrong; says where and what to change."""

    outcome = Outcome.CONFIG_ERROR

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        feed: str | None = None,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.feed = feed
        self.column = column  # of the value, where pointing at it helps (a missing unit)
        self.message = message
        where = path if line is None else f"{path}:{line}"
        where += "" if line is None or column is None else f":{column}"
        who = f" (feed {feed!r})" if feed else ""
        super().__init__(f"{where}{who}: {message}")


class FetchError(AggregatorError):
    """The request did not produce a usable response."""

    outcome = Outcome.NETWORK_ERROR

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class FetchTimeout(FetchError):
    outcome = Outcome.TIMEOUT


class BodyTooLarge(FetchError):
    outcome = Outcome.TOO_LARGE


class BodyFragmented(FetchError):
    """The body comes in pieces of a few bytes: reading it would take the event loop's time
    from every other feed in flight."""

    outcome = Outcome.FRAGMENTED


class AddressRefused(FetchError):
    """The target is not a public http(s) address and private networks are not allowed."""

    outcome = Outcome.ADDRESS_REFUSED


class TooManyRedirects(FetchError):
    outcome = Outcome.REDIRECT_ERROR


class RobotsDisallowed(FetchError):
    """The site's robots.txt asks crawlers like this one to keep away from an article page."""

    outcome = Outcome.ROBOTS_DISALLOWED


class HTTPStatusError(FetchError):
    """The server answered with a status that carries no feed or page."""

    def __init__(
        self, message: str, *, url: str, status: int, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.retry_after_s = retry_after_s  # from Retry-After (seconds, at most a day)

    @property
    def outcome(self) -> Outcome:  # type: ignore[override]  # depends on the status
        if self.status == 410:
            return Outcome.GONE
        if self.status == 429:
            return Outcome.RATE_LIMITED
        if self.status in (401, 403):
            return Outcome.FORBIDDEN
        if self.status == 404:
            return Outcome.NOT_FOUND
        if self.status >= 500:
            return Outcome.SERVER_ERROR
        return Outcome.HTTP_ERROR


class ParseError(AggregatorError):
    """The body is not a feed we can read."""

    outcome = Outcome.PARSE_ERROR


class NotAFeed(ParseError):
    """The body is something else (an HTML page, an empty body, an image)."""

    outcome = Outcome.NOT_A_FEED


class ExtractError(AggregatorError):
    """An article page gave no usable text."""

    outcome = Outcome.EXTRACT_FAILED


class StoreError(AggregatorError):
    """The database cannot be opened or written."""

    outcome = Outcome.STORE_ERROR


class QueryRefused(StoreError):
    """`aggregator query` would not run, or stopped, a query: a refused function, more than
    one statement, a limit (time, value size, memory) reached. The message says which and
    what to do (exit code 2)."""


class QueryInterrupted(StoreError):
    """The person asked the query to stop (Ctrl-C): exit code 130, no traceback."""


class UsageError(AggregatorError):
    """The command was asked for something that cannot be done as asked (exit code 2)."""

    outcome = Outcome.CONFIG_ERROR


class UnknownName(UsageError):
    """A feed, tag or story asked for by name that does not exist: an error, never an
    empty result. Says which names exist."""

    outcome = Outcome.CONFIG_ERROR

    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        import difflib  # here, not for every command's start-up

        self.kind = kind
        self.name = name
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        listed = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        super().__init__(f"there is no {kind} {name!r}{hint} ({kind}s: {listed or 'none yet'})")


class InvalidConfig(AggregatorError):
    """feeds.yaml has one or more problems; all of them are listed at once."""

    outcome = Outcome.CONFIG_ERROR

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InternalError(AggregatorError):
    """A bug of ours met while handling one feed: recorded on that feed, never fatal to others."""

    outcome = Outcome.INTERNAL_ERROR
