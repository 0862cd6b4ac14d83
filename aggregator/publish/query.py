"""Reading what a feed or API request asks for: limits, since, filters, cursors.

Pure: query parameters in, a frozen ``FeedQuery`` out, or ``QueryError`` with a one-line
message the web layer turns into a 400. Filters are regular expressions (a plain keyword
is one), matched case-insensitively against the title and the text of the content. They
run under the ``regex`` module's timeout, so a catastrophic pattern costs at most
``FILTER_TIMEOUT_SECONDS`` per item instead of a worker.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import regex

from aggregator.errors import QueryError
from aggregator.model import StoredItem

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Sequence numbers and item ids are signed 64-bit integers in the store (BIGINT on
# PostgreSQL, INTEGER on SQLite): a larger number is no value either database can hold,
# so it is refused here instead of failing inside the driver (issue 13).
MAX_INT64 = 2**63 - 1
MAX_PATTERN_LENGTH = 200
FILTER_TIMEOUT_SECONDS = 0.05
FEED_FORMATS = ("xml", "atom", "json")
_TAGS = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class FeedQuery:
    limit: int = DEFAULT_LIMIT
    since_seq: int | None = None
    since_time: datetime | None = None
    include: regex.Pattern[str] | None = None
    exclude: regex.Pattern[str] | None = None

    def cache_key(self) -> tuple[object, ...]:
        return (
            self.limit,
            self.since_seq,
            self.since_time,
            self.include.pattern if self.include else None,
            self.exclude.pattern if self.exclude else None,
        )

    @property
    def is_filtered(self) -> bool:
        return self.include is not None or self.exclude is not None


def _shown(raw: str) -> str:
    """A client's value quoted for a message, cut short when it is long."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


def whole_number(raw: str, maximum: int = MAX_INT64) -> int | None:
    """The value of ``raw`` when it is ASCII digits (leading zeros allowed) and at most
    ``maximum``, else None. ``str.isdigit`` alone also accepts other scripts' digits and
    superscripts ("²", which ``int`` refuses), and ``int`` refuses more than 4,300
    digits: neither may reach the caller as an exception."""
    digits = raw.lstrip("0") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(digits) > len(str(maximum)):
        return None
    value = int(digits)
    return value if value <= maximum else None


def parse_limit(raw: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """A page size from 1 to ``maximum``. Anything else is a QueryError, a larger number
    too: one rule for both ends, so a client asking for more than it can get is told so
    instead of silently getting less."""
    if raw is None or raw == "":
        return default
    value = whole_number(raw, maximum)
    if value is None or value < 1:
        raise QueryError(f"limit must be a whole number from 1 to {maximum}, not {_shown(raw)}")
    return value


def parse_since(raw: str | None) -> tuple[int | None, datetime | None]:
    """``since`` is a sequence number (digits, at most ``MAX_INT64``) or an ISO 8601 time."""
    if raw is None or raw == "":
        return None, None
    if raw.isascii() and raw.isdigit():
        seq = whole_number(raw)
        if seq is None:
            raise QueryError(f"since must be a sequence number from 0 to {MAX_INT64}")
        return seq, None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # a time at the edge of the calendar in another zone has no UTC equivalent
        return None, moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise QueryError(
            f"since must be a sequence number or an ISO 8601 time, not {_shown(raw)}"
        ) from None


def parse_pattern(name: str, raw: str | None) -> regex.Pattern[str] | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_PATTERN_LENGTH:
        raise QueryError(f"{name} is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return regex.compile(raw, regex.IGNORECASE | regex.V0)
    except regex.error as e:
        raise QueryError(f"bad pattern in {name}: {e}") from None


def parse_feed_query(params: Mapping[str, str]) -> FeedQuery:
    since_seq, since_time = parse_since(params.get("since"))
    return FeedQuery(
        limit=parse_limit(params.get("limit")),
        since_seq=since_seq,
        since_time=since_time,
        include=parse_pattern("q", params.get("q")),
        exclude=parse_pattern("exclude", params.get("exclude")),
    )


def _haystack(item: StoredItem) -> str:
    body = item.content or item.summary or ""
    return item.title + "\n" + html.unescape(_TAGS.sub(" ", body))


def matches(query: FeedQuery, item: StoredItem) -> bool:
    """Whether the item passes q/exclude. A pattern that runs out of time counts as no
    match for q and as a match for exclude: when in doubt, leave the item out."""
    if not query.is_filtered:
        return True
    text = _haystack(item)
    try:
        if query.include is not None and not query.include.search(
            text, timeout=FILTER_TIMEOUT_SECONDS
        ):
            return False
        if query.exclude is not None and query.exclude.search(text, timeout=FILTER_TIMEOUT_SECONDS):
            return False
    except TimeoutError:
        return False
    return True


# --------------------------------------------------------------------------- cursors


def encode_cursor(seq: int) -> str:
    """Opaque to clients; a sequence number inside."""
    return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise QueryError("cursor is not one this service gave out") from None
    version, _, number = text.partition(":")
    seq = whole_number(number) if version == "v1" else None
    if seq is None:
        raise QueryError("cursor is not one this service gave out")
    return seq


def parse_format(path_extension: str | None, params: Mapping[str, str]) -> str:
    """The feed format from the extension, or ``format=`` when there is none."""
    chosen = path_extension or params.get("format") or "xml"
    aliases = {"rss": "xml", "rss2": "xml", "jsonfeed": "json"}
    chosen = aliases.get(chosen, chosen)
    if chosen not in FEED_FORMATS:
        raise QueryError(f"unknown format {chosen!r} (use xml, atom or json)")
    return chosen
