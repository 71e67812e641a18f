"""One exception tree for the whole project.

Library errors (httpx, feedparser, trafilatura, sqlite) are translated into these at the
module that meets them; nothing above `fetch` imports httpx. Each error carries an `outcome`
(a stable word recorded in `fetches.outcome`) and a message a person can act on.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error this project raises on purpose."""

    outcome = "error"


class ConfigError(AggregatorError):
    """feeds.yaml is wrong; says where and what to change."""

    outcome = "config_error"

    def __init__(
        self, message: str, *, path: str, line: int | None = None, feed: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.feed = feed
        self.message = message
        where = path if line is None else f"{path}:{line}"
        who = f" (feed {feed!r})" if feed else ""
        super().__init__(f"{where}{who}: {message}")


class FetchError(AggregatorError):
    """The request did not produce a usable response."""

    outcome = "network_error"

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class FetchTimeout(FetchError):
    outcome = "timeout"


class BodyTooLarge(FetchError):
    outcome = "too_large"


class AddressRefused(FetchError):
    """The target is not a public http(s) address and private networks are not allowed."""

    outcome = "address_refused"


class TooManyRedirects(FetchError):
    outcome = "redirect_error"


class RobotsDisallowed(FetchError):
    """The site's robots.txt asks crawlers like this one to keep away from an article page."""

    outcome = "robots_disallowed"


class HTTPStatusError(FetchError):
    """The server answered with a status that carries no feed or page."""

    def __init__(
        self, message: str, *, url: str, status: int, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.retry_after_s = retry_after_s  # from Retry-After (seconds, at most a day)

    @property
    def outcome(self) -> str:  # type: ignore[override]  # depends on the status
        if self.status == 410:
            return "gone"
        if self.status == 429:
            return "rate_limited"
        if self.status in (401, 403):
            return "forbidden"
        if self.status == 404:
            return "not_found"
        if self.status >= 500:
            return "server_error"
        return "http_error"


class ParseError(AggregatorError):
    """The body is not a feed we can read."""

    outcome = "parse_error"


class NotAFeed(ParseError):
    """The body is something else (an HTML page, an empty body, an image)."""

    outcome = "not_a_feed"


class ExtractError(AggregatorError):
    """An article page gave no usable text."""

    outcome = "extract_failed"


class StoreError(AggregatorError):
    """The database cannot be opened or written."""

    outcome = "store_error"


class InvalidConfig(AggregatorError):
    """feeds.yaml has one or more problems; all of them are listed at once."""

    outcome = "config_error"

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InternalError(AggregatorError):
    """A bug of ours met while handling one feed: recorded on that feed, never fatal to others."""

    outcome = "internal_error"
