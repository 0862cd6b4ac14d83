"""Plain value types, named after their stage in the data's life.

    SourceConfig (config.py)      what ops asked for
    SourceState                   what the store knew about a source before this fetch
    Retrieved / NotModified       what the fetcher got back (a 304 is a value, not an error)
    ParsedFeed / ParsedItem       what the body said, normalised
    KnownItem                     what the store already holds for an item id
    ItemIntent                    what to write for one item
    DroppedItem                   an item the processing steps dropped
    FetchOutcome                  what happened, recorded in the fetch log

Holds no business logic. Every datetime here is timezone-aware UTC unless its name says
otherwise (``*_offset_minutes`` keeps the source's original UTC offset for display).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store knew about a source before this fetch."""

    source_id: str
    url: str
    effective_url: str | None = None  # adopted after a permanent redirect
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    consecutive_errors: int = 0
    next_due_at: datetime | None = None
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_item_count: int | None = None  # the last non-empty count
    feed_title: str | None = None
    pending_redirect_url: str | None = None  # see health.py
    pending_redirect_count: int = 0
    gone_count: int = 0
    retired_at: datetime | None = None
    last_warning: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPFacts:
    """Caching and HTTP facts of one response, shared by Retrieved and NotModified."""

    status: int
    final_url: str
    permanent_redirect_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after: str | None = None
    cache_max_age_seconds: int | None = None
    expires: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A body came back (200, or a file)."""

    body: bytes
    http: HTTPFacts
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NotModified:
    """The server answered 304: nothing to parse."""

    http: HTTPFacts
    duration_seconds: float = 0.0


FetchResult = Retrieved | NotModified


@dataclass(frozen=True, slots=True)
class Media:
    """A file an item carries: an enclosure (RSS ``<enclosure>``, Atom ``rel="enclosure"``,
    Media RSS ``media:content``, a JSON Feed attachment), a thumbnail, or an image or
    banner (JSON Feed). ``url`` is absolute http(s); the rest only where the feed gives it."""

    url: str
    role: str = "enclosure"  # enclosure | thumbnail | image | banner
    type: str | None = None  # the MIME type
    length: int | None = None  # bytes
    medium: str | None = None  # Media RSS: image | audio | video | document | executable
    width: int | None = None
    height: int | None = None
    duration_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One entry as the feed gave it, normalised (text stripped, dates aware UTC)."""

    title: str
    link: str | None = None
    guid: str | None = None
    summary: str | None = None
    content: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    published_offset_minutes: int | None = None
    updated_at: datetime | None = None
    category_name: str | None = None  # the value of the source's category_from field
    tags: tuple[str, ...] = ()
    api_id: str | None = None  # the id field of a JSON API record (for content_url)
    # The body comes from a per-item content_url, downloaded once: it is not part of the
    # change hash, and an update that lacks it keeps the stored body.
    is_content_external: bool = False
    media: tuple[Media, ...] = ()  # in the feed's order, each URL once


@dataclass(frozen=True, slots=True)
class FeedHints:
    """What an RSS channel asks of the programs polling it (RSS 2.0: ``ttl``,
    ``skipHours``, ``skipDays``), for freshness.py. Hours and days are in UTC (GMT)."""

    ttl_minutes: int | None = None  # cache the channel this long before fetching again
    skip_hours: frozenset[int] = frozenset()  # 0-23: do not fetch within these hours
    skip_days: frozenset[int] = frozenset()  # 0 (Monday) to 6 (Sunday)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    items: tuple[ParsedItem, ...]
    version: str  # "rss20", "atom10", "jsonfeed11", "json-api", ...
    warnings: tuple[str, ...] = ()
    hints: FeedHints | None = None  # ttl, skipHours, skipDays, when the feed gives any


class Holder(enum.Enum):
    """Whose copy of a known item is stored, seen from the source being fetched. Sources
    take precedence by ``priority``, then by their order in the config (docs/design.md)."""

    SELF = "self"  # this source's own copy
    YIELDING = "yielding"  # another source's, which this one takes precedence over
    PREVAILING = "prevailing"  # another source's, which takes precedence over this one


@dataclass(frozen=True, slots=True)
class KnownItem:
    """What the store holds for an item id, seen from the source being fetched.

    ``source_sha256`` is the content hash this source gave last time (None when the item
    is known only from other sources)."""

    stable_id: str
    source_sha256: str | None
    category_slugs: frozenset[str]
    holder: Holder


@dataclass(frozen=True, slots=True)
class CategoryRef:
    """A category an item is filed under. ``name`` is the media name it came from, if any."""

    slug: str
    title: str
    description: str = ""
    name: str | None = None


class IntentKind(enum.Enum):
    NEW = "new"
    # same id, and this source's copy changed, or it replaces a copy of a source it takes
    # precedence over: update in place (the store checks the precedence again as it writes)
    UPDATED = "updated"
    MEMBERSHIP = "membership"  # known from another source, or new categories to add


@dataclass(frozen=True, slots=True)
class ItemIntent:
    """What to write for one item."""

    kind: IntentKind
    stable_id: str
    title: str
    link: str | None
    guid: str | None
    summary: str | None
    content: str | None
    author: str | None
    published_at: datetime  # the first-seen time when the feed gave none
    published_offset_minutes: int
    is_published_firm: bool  # False: first-seen or clamped; an update keeps the stored one
    is_content_external: bool  # True: an update without content keeps the stored body
    content_sha256: str
    categories: tuple[CategoryRef, ...]
    # the item's own last change as its feed gave it (not after the fetch); None: none given
    source_updated_at: datetime | None = None
    # securities it names (600519.SH), found on new and changed items only (finance/)
    tickers: tuple[str, ...] = ()
    media: tuple[Media, ...] = ()


@dataclass(frozen=True, slots=True)
class DroppedItem:
    """An item a processing step dropped (process/): never stored, and not processed
    again while the source gives it unchanged (``content_sha256``) to the same steps
    (``steps_sha256``, the pipeline's fingerprint)."""

    stable_id: str
    content_sha256: str
    steps_sha256: str
    reason: str


class OutcomeKind(enum.Enum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"  # HTTP 304
    UNCHANGED_BODY = "unchanged_body"  # 200 with the same bytes as last time
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What happened in one fetch of one source; one row of the fetch log."""

    source_id: str
    kind: OutcomeKind
    started_at: datetime
    duration_seconds: float
    next_due_at: datetime
    http_status: int | None = None
    bytes_received: int = 0
    new_count: int = 0
    updated_count: int = 0
    unchanged_count: int = 0
    error: str | None = None
    error_class: str | None = None
    item_count: int | None = None  # items in the parsed feed
    warnings: tuple[str, ...] = field(default_factory=tuple)
    dropped_count: int = 0  # items processing steps dropped (now, or before and listed again)
    dropped: tuple[DroppedItem, ...] = ()  # the ones dropped now, to remember


@dataclass(frozen=True, slots=True)
class IdRule:
    """How a source's items get their ids: ``first`` is where the chain starts."""

    first: str = "infocode"  # infocode | guid | link | hash
    regex: re.Pattern[str] | None = None


# Read side: what the store gives back to publishing and serving.


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as stored, with its categories and the sources that carried it."""

    item_id: int
    stable_id: str
    seq: int
    title: str
    link: str | None
    guid: str | None
    summary: str | None
    content: str | None
    author: str | None
    published_at: datetime
    published_offset_minutes: int
    first_seen_at: datetime
    updated_at: datetime
    update_count: int
    source_id: str  # whose copy this is: the one that takes precedence among its sources
    category_slugs: tuple[str, ...]
    first_seq: int = 0
    # the item's own last change as its feed gave it; ``updated_at`` is when we stored it
    source_updated_at: datetime | None = None
    tickers: tuple[str, ...] = ()  # the securities it names, sorted (600519.SH)
    media: tuple[Media, ...] = ()  # enclosures first, in the feed's order

    @property
    def is_update(self) -> bool:
        """It changed (content or categories) since it was first stored."""
        return self.seq != self.first_seq


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    """A category as stored, with its freshness stamp and size."""

    slug: str
    title: str
    description: str
    name: str | None
    origin: str  # config | derived
    last_seq: int
    item_count: int


def public_url(url: str) -> str | None:
    """The URL when a reader can follow it (http or https), else None: a ``file:``
    source's URL is a path on this server, which no output may show."""
    return url if urlsplit(url).scheme in ("http", "https") else None


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A source's identity for provenance (RSS/Atom/JSON ``<source>`` in merged feeds)."""

    source_id: str
    title: str
    url: str  # as configured (or redirected to): may be a local ``file:`` URL

    @property
    def public_url(self) -> str | None:
        """``url`` when it may be published (see ``public_url``)."""
        return public_url(self.url)
