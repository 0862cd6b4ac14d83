"""When a source is next due: one pure function over the interval, its jitter, the
server's and the feed's hints and the error backoff, clamped.

    next = now + interval (or the cron schedule's next time; or, on a market's clock,
           now + trading while it is open, else the earlier of now + closed and its
           next open)
    later of that and the latest of the server's Cache-Control max-age / Expires and
        the feed's RSS <ttl> (up to max_backoff, or the interval if longer)
    on errors: now + interval * 2**(errors-1), capped at max_backoff
    later of that and Retry-After (429/503, seconds or an HTTP date; up to 24 h)
    plus a fixed per-source jitter in [0, jitter_fraction * interval), so sources
    configured alike do not all fire in the same second
    moved out of the feed's <skipHours> and <skipDays> (UTC) to the same minute of
        the next hour not skipped

Model: ``next_update_after`` in lemon24/reader. Also the start-up spread: sources that
fell due while the service was down are spread over a window instead of all firing at once.
"""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aggregator.finance.clock import MarketClock
from aggregator.model import FeedHints

MAX_RETRY_AFTER = timedelta(hours=24)
MIN_DELAY = timedelta(seconds=1)


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed for ``key``: deterministic jitter, testable."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return now + timedelta(seconds=int(text))
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True, slots=True)
class MarketSchedule:
    """``interval: {trading, closed, market}`` with the market's clock."""

    trading: timedelta
    closed: timedelta
    clock: MarketClock


def market_next(now: datetime, market: MarketSchedule) -> tuple[datetime, timedelta, bool]:
    """The market clock's plain due time, the interval in force, and whether the time is
    pinned to the market's open (no jitter then: the open is the moment that matters)."""
    if market.clock.is_open(now):
        return now + market.trading, market.trading, False
    opens = market.clock.next_open(now)
    if opens is not None and opens < now + market.closed:
        return opens, market.closed, True
    return now + market.closed, market.closed, False


def next_fetch_after(
    *,
    now: datetime,
    interval: timedelta,
    source_key: str,
    jitter_fraction: float = 0.0,
    consecutive_errors: int = 0,
    max_backoff: timedelta = timedelta(hours=6),
    cron_next: datetime | None = None,
    retry_after: str | None = None,
    cache_max_age_seconds: int | None = None,
    expires: str | None = None,
    feed: FeedHints | None = None,
    market: MarketSchedule | None = None,
) -> datetime:
    due = cron_next if cron_next is not None else now + interval
    pinned = cron_next is not None
    if market is not None:
        due, interval, pinned = market_next(now, market)
    cap = max(max_backoff, interval)
    hint: datetime | None = None
    if cache_max_age_seconds is not None:
        hint = now + timedelta(seconds=cache_max_age_seconds)
    elif expires:
        hint = parse_retry_after(expires, now)
    if feed is not None and feed.ttl_minutes:
        # RSS 2.0 <ttl>: minutes the channel may be cached; a hint like max-age
        ttl = now + timedelta(minutes=feed.ttl_minutes)
        hint = ttl if hint is None else max(hint, ttl)
    if hint is not None:
        due = max(due, min(hint, now + cap))
    if consecutive_errors > 0:
        # in float seconds: interval * 2**n overflows timedelta long before the cap applies
        backoff_seconds = interval.total_seconds() * 2.0 ** min(consecutive_errors - 1, 60)
        due = max(due, now + min(timedelta(seconds=min(backoff_seconds, 1e9)), cap))
    server_says = parse_retry_after(retry_after, now)
    if server_says is not None:
        due = max(due, min(server_says, now + MAX_RETRY_AFTER))
    if not pinned and jitter_fraction > 0:
        due += interval * jitter_fraction * stable_fraction(source_key)
    if feed is not None:
        due = outside_skipped(due, feed.skip_hours, feed.skip_days)
    return max(due, now + MIN_DELAY)


def outside_skipped(due: datetime, hours: frozenset[int], days: frozenset[int]) -> datetime:
    """``due``, or the same minute of the first later hour that is in none of the skipped
    hours and days (UTC, as RSS 2.0 gives them), keeping the source's place within the
    hour (its jitter). A feed that skips every hour or every day asks the impossible and
    is not followed."""
    if (not hours and not days) or len(hours) >= 24 or len(days) >= 7:
        return due
    moment = due.astimezone(UTC)
    for _ in range(24 * 7):
        if moment.hour not in hours and moment.weekday() not in days:
            return moment
        moment += timedelta(hours=1)
    return due


def spread_overdue(
    overdue: Iterable[tuple[str, timedelta]], now: datetime, max_window: timedelta
) -> dict[str, datetime]:
    """New due times for sources that fell due while nothing ran.

    Each source keeps its place in a window as long as its interval (at most
    ``max_window``), fixed by its id: none is skipped, and they do not all fire at once.
    """
    return {
        source_id: now + min(interval, max_window) * stable_fraction("spread:" + source_id)
        for source_id, interval in overdue
    }
