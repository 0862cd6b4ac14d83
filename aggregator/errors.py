"""The one exception hierarchy of the aggregator.

Foreign exceptions (requests, feedparser, SQLAlchemy, YAML) are wrapped at the boundary
with ``raise ... from e`` so callers only ever catch these::

    AggregatorError
    ├── ConfigError              the YAML file is unreadable or invalid (carries every problem)
    ├── FetchError               a source could not be retrieved
    │   ├── HTTPStatusError      the server answered with an error status (carries it)
    │   ├── BodyTooLargeError    the body (or its decompressed form) passed the cap
    │   ├── FetchTimeoutError    connect/read timeout or the total deadline passed
    │   └── ConnectError         DNS, refused, reset, TLS, redirect loop
    ├── ParseError               the body is not a feed we can read
    ├── ShardError               a process running part of a fetch pass died
    └── StoreError               the database refused or is unreachable
        ├── SourceNotFoundError  get_* on an unknown source id
        └── ItemNotFoundError    get_item on an unknown item id
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class FetchError(AggregatorError):
    """A source could not be retrieved. ``status`` is the HTTP status when there was one."""

    status: int | None = None


class HTTPStatusError(FetchError):
    def __init__(self, status: int, reason: str, retry_after: str | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} {reason}".rstrip())


class BodyTooLargeError(FetchError):
    pass


class FetchTimeoutError(FetchError):
    pass


class ConnectError(FetchError):
    pass


class ParseError(AggregatorError):
    pass


class ShardError(AggregatorError):
    pass


class StoreError(AggregatorError):
    pass


class SourceNotFoundError(StoreError):
    pass


class ItemNotFoundError(StoreError):
    pass
