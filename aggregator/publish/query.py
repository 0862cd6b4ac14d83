"""Reading what a feed or API request asks for: limits, since, filters, cursors.

Pure: query parameters in, a frozen ``FeedQuery`` out, or ``QueryError`` with a one-line
message the web layer turns into a 400. Filters are regular expressions (a plain keyword
is one), matched case-insensitively against the title and the text of the content.

Filters are RE2 patterns (google-re2), not Python's: RE2 matches in time linear in the
text whatever the pattern, where a backtracking engine can take exponential time
(``(x+x+)+y`` on a long run of x). The ``regex`` module's timeout of 50 ms an item did not
bound a request: on 2,000 long items ``(x+x+)+y`` kept a CPU busy for 110 s (issue 13);
RE2 reads those items once, in hundredths of a second. The price is RE2's syntax: no
backreferences and no lookaround (a 400 says so). Linear can still be slow (an NFA over a
large program), so one request's filters also share a ``FilterBudget``: a total time over
every item they look at, and a flag the web app sets when the client goes away.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import re2

from aggregator.errors import FilterBudgetError, QueryError
from aggregator.model import StoredItem

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Sequence numbers and item ids are signed 64-bit integers in the store (BIGINT on
# PostgreSQL, INTEGER on SQLite): a larger number is no value either database can hold,
# so it is refused here instead of failing inside the driver (issue 13).
MAX_INT64 = 2**63 - 1
MAX_PATTERN_LENGTH = 200
# What one request's q/exclude may take over all the items it looks at (up to the
# publisher's FILTER_SCAN_LIMIT). A word or an alternation over 5,000 items of a few KB
# takes a few hundredths of a second.
FILTER_BUDGET_SECONDS = 1.0
FILTER_TEXT_CHARS = 100_000  # of each item's text: bounds one item's share of the budget
# RE2's memory for a pattern's program and DFA caches. RE2's default of 8 MiB let 128
# patterns (its module's cache of compiled patterns) hold 120 MiB; a pattern that needs
# more is refused as too large.
PATTERN_MAX_MEM = 1 << 20
FEED_FORMATS = ("xml", "atom", "json")
_TAGS = re.compile(r"<[^>]*>")


class Pattern(Protocol):
    """What the filters use of a compiled pattern (google-re2 ships no type hints)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: bytes) -> object | None: ...


@dataclass(frozen=True, slots=True)
class FeedQuery:
    limit: int = DEFAULT_LIMIT
    since_seq: int | None = None
    since_time: datetime | None = None
    include: Pattern | None = None
    exclude: Pattern | None = None

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


def _pattern_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 logs to stderr: every refused pattern, each DFA overflow
    options.max_mem = PATTERN_MAX_MEM
    return options


_OPTIONS = _pattern_options()


def parse_pattern(name: str, raw: str | None) -> Pattern | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_PATTERN_LENGTH:
        raise QueryError(f"{name} is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled: Pattern = re2.compile(raw, _OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args else "invalid"
        raise QueryError(
            f"bad pattern in {name}: {reason} (RE2 syntax: no backreferences or lookaround)"
        ) from None
    return compiled


def parse_feed_query(params: Mapping[str, str]) -> FeedQuery:
    since_seq, since_time = parse_since(params.get("since"))
    return FeedQuery(
        limit=parse_limit(params.get("limit")),
        since_seq=since_seq,
        since_time=since_time,
        include=parse_pattern("q", params.get("q")),
        exclude=parse_pattern("exclude", params.get("exclude")),
    )


def _haystack(item: StoredItem) -> bytes:
    """What the filters search: the title and the text of the body (tags removed,
    entities read), the first FILTER_TEXT_CHARS of it, as the UTF-8 RE2 reads."""
    body = item.content or item.summary or ""
    text = item.title + "\n" + html.unescape(_TAGS.sub(" ", body))
    return text[:FILTER_TEXT_CHARS].encode("utf-8", "surrogatepass")


def matches(query: FeedQuery, item: StoredItem) -> bool:
    """Whether the item passes q/exclude."""
    if not query.is_filtered:
        return True
    text = _haystack(item)
    if query.include is not None and query.include.search(text) is None:
        return False
    return query.exclude is None or query.exclude.search(text) is None


class FilterBudget:
    """The time one request's filters may take over all the items they look at, and
    whether its client is still there. ``check`` raises FilterBudgetError once the time
    is spent or ``cancel`` was called (by the web app, from its event loop's thread,
    when the client disconnects)."""

    def __init__(
        self, seconds: float = FILTER_BUDGET_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._deadline = clock() + seconds
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise FilterBudgetError("the client went away")
        if self._clock() > self._deadline:
            raise FilterBudgetError(
                f"q/exclude took more than {self.seconds:g} s over this feed's items; "
                "use a simpler pattern or a smaller feed"
            )


def filter_items(
    query: FeedQuery, items: Iterable[StoredItem], budget: FilterBudget | None = None
) -> list[StoredItem]:
    """The items that pass q/exclude, checking ``budget`` before each one."""
    chosen = []
    for item in items:
        if budget is not None:
            budget.check()
        if matches(query, item):
            chosen.append(item)
    return chosen


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
