"""Market-clocked polling: the due time on a table of instants on the Shanghai Stock
Exchange's real calendar (exchange-calendars), with Retry-After and error backoff on top.

The Spring Festival closure is taken from the library, not written here: the newest one
it records (exchange-calendars 4.13 records Shanghai's holidays through 2026, so that is
the 2026 closure until the library records 2027's).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aggregator.finance.exchanges import market_clock
from aggregator.ingest.freshness import MarketSchedule, next_fetch_after

SHANGHAI = ZoneInfo("Asia/Shanghai")
M = timedelta(minutes=1)
CLOCK = market_clock("XSHG")
SCHEDULE = MarketSchedule(trading=M, closed=30 * M, clock=CLOCK)


def _spring_festival() -> tuple[date, date]:
    """The last session before and the first after the newest recorded closure."""
    calendar = CLOCK.calendar
    year = (
        calendar.last_session.year
        if calendar.last_session.month > 3
        else (calendar.last_session.year - 1)
    )
    sessions = [s.date() for s in calendar.sessions_in_range(f"{year}-01-02", f"{year}-03-31")]
    gaps = [(after - before, before, after) for before, after in itertools.pairwise(sessions)]
    _, before, after = max(gaps)
    return before, after


BEFORE_FESTIVAL, AFTER_FESTIVAL = _spring_festival()


def at(day: date, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


MONDAY = date(2026, 12, 7)
SATURDAY = date(2026, 12, 5)

CASES = [
    # (id, now, extra arguments, due)
    ("trading morning: every minute", at(MONDAY, "10:00"), {}, at(MONDAY, "10:01")),
    ("opening auction counts as open", at(MONDAY, "09:16"), {}, at(MONDAY, "09:17")),
    ("before the auction: at 9:15", at(MONDAY, "09:00"), {}, at(MONDAY, "09:15")),
    ("lunch break: closed interval", at(MONDAY, "11:45"), {}, at(MONDAY, "12:15")),
    ("late lunch: at the afternoon open", at(MONDAY, "12:40"), {}, at(MONDAY, "13:00")),
    ("just before the close", at(MONDAY, "14:59"), {}, at(MONDAY, "15:00")),
    ("just after the close", at(MONDAY, "15:01"), {}, at(MONDAY, "15:31")),
    ("Saturday", at(SATURDAY, "10:00"), {}, at(SATURDAY, "10:30")),
    ("Sunday night", at(MONDAY, "00:00") - 2 * 60 * M, {}, at(MONDAY, "00:00") - 90 * M),
    ("Monday 8:50: at the auction", at(MONDAY, "08:50"), {}, at(MONDAY, "09:15")),
    ("last session before the festival", at(BEFORE_FESTIVAL, "10:00"), {},
     at(BEFORE_FESTIVAL, "10:01")),
    ("the festival's first evening", at(BEFORE_FESTIVAL, "20:00"), {},
     at(BEFORE_FESTIVAL, "20:30")),
    ("inside the festival closure", at(BEFORE_FESTIVAL + timedelta(days=4), "10:00"), {},
     at(BEFORE_FESTIVAL + timedelta(days=4), "10:30")),
    ("morning after the festival: auction", at(AFTER_FESTIVAL, "09:00"), {},
     at(AFTER_FESTIVAL, "09:15")),
    ("first session after the festival", at(AFTER_FESTIVAL, "10:00"), {},
     at(AFTER_FESTIVAL, "10:01")),
    ("Retry-After on top, trading", at(MONDAY, "10:00"), {"retry_after": "600"},
     at(MONDAY, "10:10")),
    ("Retry-After on top, closed", at(SATURDAY, "10:00"), {"retry_after": "7200"},
     at(SATURDAY, "12:00")),
    ("3 errors while trading: 4x trading", at(MONDAY, "10:00"), {"consecutive_errors": 3},
     at(MONDAY, "10:04")),
    ("3 errors while closed: 4x closed", at(SATURDAY, "10:00"), {"consecutive_errors": 3},
     at(SATURDAY, "12:00")),
    ("errors still wait past the open", at(MONDAY, "09:00"), {"consecutive_errors": 3},
     at(MONDAY, "11:00")),
]  # fmt: skip


@pytest.mark.parametrize(("now", "extra", "due"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_due_on_the_shanghai_calendar(
    now: datetime, extra: dict[str, object], due: datetime
) -> None:
    got = next_fetch_after(
        now=now,
        interval=30 * M,
        source_key="s",
        market=SCHEDULE,
        **extra,  # type: ignore[arg-type]
    )
    assert got == due


def test_the_festival_is_a_real_closure() -> None:
    # the table above would pass on plain weekdays if the closure were not found
    assert (AFTER_FESTIVAL - BEFORE_FESTIVAL).days >= 7
    assert not CLOCK.is_open(at(BEFORE_FESTIVAL + timedelta(days=3), "10:00"))


def test_jitter_on_the_interval_in_force_but_not_at_the_open() -> None:
    trading = next_fetch_after(
        now=at(MONDAY, "10:00"), interval=30 * M, source_key="s", jitter_fraction=0.5,
        market=SCHEDULE,
    )  # fmt: skip
    assert at(MONDAY, "10:01") < trading < at(MONDAY, "10:01") + 30 * timedelta(seconds=1)
    at_open = next_fetch_after(
        now=at(MONDAY, "09:00"), interval=30 * M, source_key="s", jitter_fraction=0.5,
        market=SCHEDULE,
    )  # fmt: skip
    assert at_open == at(MONDAY, "09:15")


def test_beyond_the_recorded_calendar_polls_at_the_trading_rate() -> None:
    beyond = CLOCK.calendar.schedule["close"].iloc[-1].to_pydatetime() + timedelta(days=3)
    assert CLOCK.is_open(beyond)
    assert next_fetch_after(now=beyond, interval=30 * M, source_key="s", market=SCHEDULE) == (
        beyond + M
    )
