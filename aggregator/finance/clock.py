"""The market's clock as freshness sees it: a small interface, no calendar library.

Freshness (``ingest/freshness.py``) asks only whether a market is open at an instant and
when it next opens; the exchange-calendars adapter (``finance/exchanges.py``) answers,
and tests may answer with a plain fake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class MarketClock(Protocol):
    """One exchange's trading sessions. Instants are timezone-aware UTC."""

    def is_open(self, instant: datetime) -> bool:
        """True in a session (including the opening auction), False in a break, a
        night, a weekend or a holiday."""
        ...

    def next_open(self, instant: datetime) -> datetime | None:
        """The first session start (or end of a lunch break) after ``instant``; None
        when the calendar records none."""
        ...
