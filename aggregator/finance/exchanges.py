"""The exchange-calendars adapter behind ``MarketClock``. Holds no business logic.

Sessions, lunch breaks and holidays come from the exchange-calendars library (the
``markets`` extra: it brings pandas), never from a hand-written list. The library
records each exchange's holidays only so far ahead (Shanghai's up to a year): past its
last recorded session the clock says open, so a source polls at its trading rate rather
than sleeping through sessions nobody has recorded yet.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.errors import ConfigError

# The opening call auction before the continuous session, when prices and news move:
# Shanghai 9:15-9:25 (then 9:30), Hong Kong's pre-opening 9:00-9:30.
OPENING_AUCTION = {"XSHG": timedelta(minutes=15), "XHKG": timedelta(minutes=30)}
_LOOKAHEAD = timedelta(days=40)  # longer than any exchange closure (Spring Festival: 9 days)


class ExchangeClock:
    """``MarketClock`` for one exchange-calendars calendar."""

    def __init__(self, calendar: Any, auction: timedelta = timedelta(0)) -> None:
        self.calendar = calendar
        self._auction = auction
        self._last_close: datetime = calendar.schedule["close"].iloc[-1].to_pydatetime()

    def _windows(self, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
        day = instant.astimezone(UTC).replace(tzinfo=None)
        rows = self.calendar.schedule.loc[day - timedelta(days=3) : day + _LOOKAHEAD]
        for row in rows.itertuples():
            opens = row.open.to_pydatetime() - self._auction
            if row.break_start is not None and str(row.break_start) != "NaT":
                yield opens, row.break_start.to_pydatetime()
                yield row.break_end.to_pydatetime(), row.close.to_pydatetime()
            else:
                yield opens, row.close.to_pydatetime()

    def is_open(self, instant: datetime) -> bool:
        if instant >= self._last_close:
            return True  # beyond the recorded calendar: poll at the trading rate
        return any(start <= instant < end for start, end in self._windows(instant))

    def next_open(self, instant: datetime) -> datetime | None:
        return next((start for start, _ in self._windows(instant) if start > instant), None)


@functools.lru_cache(maxsize=16)
def market_clock(market: str) -> ExchangeClock:
    """The clock of an exchange-calendars market name (XSHG, XHKG, XNYS), built once."""
    try:
        import exchange_calendars
    except ImportError as e:
        raise ConfigError(
            [f"market {market!r} needs the exchange calendars: pip install 'aggregator[markets]'"]
        ) from e
    with warnings.catch_warnings():
        # the library's own use of pandas APIs pandas has deprecated: not ours to fix,
        # and not worth a warning in every process's log
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        calendar = exchange_calendars.get_calendar(market)
    return ExchangeClock(calendar, OPENING_AUCTION.get(calendar.name, timedelta(0)))
