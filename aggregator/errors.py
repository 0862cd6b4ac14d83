"""The one exception hierarchy of the aggregator.

Foreign exceptions (requests, feedparser, SQLAlchemy, YAML) are wrapped at the boundary
with ``raise ... from e`` so callers only ever catch these::

    AggregatorError
    ├── ConfigError                the YAML file is unreadable or invalid (carries every problem)
    ├── FetchError                 a source could not be retrieved
    │   ├── HTTPStatusError        the server answered with an error status (carries it)
    │   ├── BodyTooLargeError      the body (or its decompressed form) passed the cap
    │   ├── FetchTimeoutError      connect/read timeout or the total deadline passed
    │   └── ConnectError           DNS, refused, reset, TLS, redirect loop
    ├── ParseError                 the body is not a feed we can read
    ├── ShardError                 a process running part of a fetch pass died
    ├── StoreError                 the database refused or is unreachable
    │   ├── SourceNotFoundError    get_* on an unknown source id
    │   ├── SourceBusyError        a source's lease is held by another process (reprocess)
    │   └── ItemNotFoundError      get_item on an unknown item id
    └── PublishError               a document or an export could not be made as asked
        ├── QueryError             a request parameter is invalid (the message is for the client)
        ├── FilterBudgetError      q/exclude ran out of the request's time, or its client left
        ├── UnknownCategoryError   a feed names categories that do not exist (carries them)
        ├── PageNotFoundError      a category page past its last one
        ├── UnknownFormatError     no renderer for this extension (publish/formats.py)
        └── ExportError            a static export cannot be written where or as asked

Notes:

* Three exceptions are defined elsewhere on purpose and never leave the module that
  raises them, so they are not in the tree: ``ingest.fastparse.Declined`` signals that
  a feed is outside the fast path and is caught in ``parse_fast`` (feedparser then reads
  the feed); ``ingest.fetcher.ForbiddenAddressError`` is a urllib3 ``NewConnectionError``
  so urllib3 and requests handle a refused peer address as a failed connect, and the
  fetcher turns the ``requests.ConnectionError`` carrying it into a ``ConnectError``
  ("refused: ..."); ``ingest.fetcher.ForbiddenTargetError`` does the same for a proxied
  request whose target is refused before the proxy is asked.
* Built-in exceptions are raised only for a caller's mistake, not for a condition to
  handle: ``KeyError`` from ``Settings.source`` for an id not in the config (callers
  check ids first), ``ValueError`` from the config's field validators (pydantic collects
  them, and ``load_settings`` raises them as one ``ConfigError``), ``ValueError`` for a
  naive datetime given to the store (SQLAlchemy wraps it, the store raises
  ``StoreError``).
* ``tests/test_errors.py`` fails when a class defined in the package is an exception
  outside this tree (other than the two above), or when this drawing and the classes
  differ.
"""

from __future__ import annotations

from collections.abc import Sequence


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


class SourceBusyError(StoreError):
    pass


class ItemNotFoundError(StoreError):
    pass


class PublishError(AggregatorError):
    """A feed, page or export could not be made as asked."""


class QueryError(PublishError):
    """A request parameter is invalid; the message is shown to the client."""


class FilterBudgetError(PublishError):
    """A request's q/exclude used up its time over the items, or its client went away."""


class UnknownCategoryError(PublishError):
    """A feed names categories that do not exist; ``missing`` holds them."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(", ".join(missing))


class PageNotFoundError(PublishError):
    """A category page past its last one (the web app answers 404)."""


class UnknownFormatError(PublishError):
    """No output format has this extension; the message names the known ones."""


class ExportError(PublishError):
    pass
