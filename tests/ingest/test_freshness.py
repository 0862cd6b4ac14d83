"""When a source is next due: table-driven over the inputs of next_fetch_after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.ingest.freshness import (
    next_fetch_after,
    outside_skipped,
    parse_retry_after,
    spread_overdue,
    stable_fraction,
)
from aggregator.model import FeedHints

NOW = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday, midnight
M = timedelta(minutes=1)
H = timedelta(hours=1)
THURSDAY, FRIDAY = 3, 4

CASES = [
    ("plain interval", {}, NOW + 10 * M),
    ("longer cache max-age is honoured", {"cache_max_age_seconds": 3600}, NOW + 60 * M),
    ("shorter max-age never speeds up", {"cache_max_age_seconds": 5}, NOW + 10 * M),
    ("max-age capped at max_backoff", {"cache_max_age_seconds": 10**7}, NOW + 360 * M),
    ("Expires as a date", {"expires": format_datetime(NOW + 30 * M, usegmt=True)}, NOW + 30 * M),
    ("1 error: interval", {"consecutive_errors": 1}, NOW + 10 * M),
    ("3 errors: 4x interval", {"consecutive_errors": 3}, NOW + 40 * M),
    ("many errors: capped", {"consecutive_errors": 50}, NOW + 360 * M),
    ("Retry-After seconds", {"retry_after": "7200"}, NOW + 120 * M),
    ("Retry-After date", {"retry_after": format_datetime(NOW + 90 * M, usegmt=True)}, NOW + 90 * M),
    ("Retry-After capped at 24h", {"retry_after": "999999"}, NOW + timedelta(hours=24)),
    ("garbage Retry-After ignored", {"retry_after": "soon"}, NOW + 10 * M),
    ("cron next time", {"cron_next": NOW + 3 * M}, NOW + 3 * M),
    ("never in the past", {"cron_next": NOW - M}, NOW + timedelta(seconds=1)),
    ("RSS ttl longer than the interval", {"feed": FeedHints(ttl_minutes=60)}, NOW + 60 * M),
    ("ttl shorter never speeds up", {"feed": FeedHints(ttl_minutes=5)}, NOW + 10 * M),
    ("ttl capped at max_backoff", {"feed": FeedHints(ttl_minutes=10**6)}, NOW + 360 * M),
    (
        "ttl and max-age: the later",
        {"feed": FeedHints(ttl_minutes=30), "cache_max_age_seconds": 3600},
        NOW + 60 * M,
    ),
    (
        "ttl and max-age: the later, the ttl",
        {"feed": FeedHints(ttl_minutes=90), "cache_max_age_seconds": 3600},
        NOW + 90 * M,
    ),
    ("ttl 0 is no hint", {"feed": FeedHints(ttl_minutes=0)}, NOW + 10 * M),
    (
        "skipHours: the same minute of the next hour not skipped",
        {"feed": FeedHints(skip_hours=frozenset({0, 1}))},
        NOW + 2 * H + 10 * M,
    ),
    (
        "skipHours elsewhere: nothing moves",
        {"feed": FeedHints(skip_hours=frozenset({5}))},
        NOW + 10 * M,
    ),
    (
        "skipDays: the next day",
        {"feed": FeedHints(skip_days=frozenset({THURSDAY}))},
        NOW + 24 * H + 10 * M,
    ),
    (
        "skipDays and skipHours together",
        {"feed": FeedHints(skip_days=frozenset({THURSDAY}), skip_hours=frozenset({0, 1, 2}))},
        NOW + 27 * H + 10 * M,
    ),
    (
        "every hour skipped: not followed",
        {"feed": FeedHints(skip_hours=frozenset(range(24)))},
        NOW + 10 * M,
    ),
    (
        "a ttl, then out of the skipped hours",
        {"feed": FeedHints(ttl_minutes=50, skip_hours=frozenset({0}))},
        NOW + H + 50 * M,
    ),
    (
        "skipHours apply to a cron time too",
        {"cron_next": NOW + 3 * M, "feed": FeedHints(skip_hours=frozenset({0}))},
        NOW + H + 3 * M,
    ),
]


@pytest.mark.parametrize(("extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_next_fetch_after(extra: dict[str, object], expected: datetime) -> None:
    got = next_fetch_after(now=NOW, interval=10 * M, source_key="s", **extra)  # type: ignore[arg-type]
    assert got == expected


def test_jitter_is_fixed_per_source_and_bounded() -> None:
    due = {
        key: next_fetch_after(now=NOW, interval=10 * M, source_key=key, jitter_fraction=0.1)
        for key in ("a", "b", "c", "d")
    }
    assert len(set(due.values())) == 4
    assert all(NOW + 10 * M <= d < NOW + 11 * M for d in due.values())
    assert due["a"] == next_fetch_after(
        now=NOW, interval=10 * M, source_key="a", jitter_fraction=0.1
    )


def test_spread_overdue_keeps_every_source_within_its_window() -> None:
    overdue = [(f"s{i}", 10 * M) for i in range(200)] + [("fast", timedelta(seconds=30))]
    due = spread_overdue(overdue, NOW, timedelta(minutes=5))
    assert set(due) == {sid for sid, _ in overdue}  # none skipped
    assert all(NOW <= d < NOW + 5 * M for d in due.values())
    assert due["fast"] < NOW + timedelta(seconds=30)
    first_minute = sum(1 for d in due.values() if d < NOW + M)
    assert first_minute < 80  # about a fifth, not a burst of everything


def test_parse_retry_after_naive_date_is_utc() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 01:00:00", NOW) == NOW + 60 * M


@given(st.text())
def test_stable_fraction_in_unit_interval(key: str) -> None:
    assert 0 <= stable_fraction(key) < 1


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=1, max_value=10**6))
def test_due_is_always_in_the_future_and_bounded(errors: int, interval_s: int) -> None:
    interval = timedelta(seconds=interval_s)
    due = next_fetch_after(
        now=NOW, interval=interval, source_key="k", consecutive_errors=errors, jitter_fraction=0.1
    )
    assert NOW < due <= NOW + max(interval, timedelta(hours=6)) * 1.1 + timedelta(hours=24)


HOURS = st.frozensets(st.integers(0, 23), max_size=23)
DAYS = st.frozensets(st.integers(0, 6), max_size=6)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    HOURS,
    DAYS,
)
def test_outside_skipped_lands_in_an_hour_and_day_not_skipped(
    due: datetime, hours: frozenset[int], days: frozenset[int]
) -> None:
    moved = outside_skipped(due, hours, days)
    assert moved.hour not in hours
    assert moved.weekday() not in days
    assert due <= moved < due + timedelta(days=7)
    assert (moved - due) % H == timedelta(0)  # the same minute: the jitter is kept
    if due.hour not in hours and due.weekday() not in days:
        assert moved == due
