"""The config's smaller parts, as frozen pydantic models: defaults, per-host limits,
housekeeping, categories, JSON field maps, market intervals and id rules, with the
field types they share (durations, networks). ``settings`` composes them into
``Source`` and ``Settings``. Holds no business logic.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
)

from aggregator.addresses import Network, parse_network
from aggregator.config.durations import DURATION_PATTERN, format_duration, parse_duration
from aggregator.config.steps import StepConfig

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["90s", "5m"]}),
]
# a network a fetch may reach although it is not public (addresses.py)
AllowedNetwork = Annotated[
    Network,
    BeforeValidator(parse_network),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["127.0.0.0/8", "::1/128", "10.1.2.3"]}),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name such as Asia/Shanghai)"
        ) from e
    return value


class Defaults(_Frozen):
    """Values every source inherits unless it sets its own."""

    interval: Duration = timedelta(minutes=30)
    timeout_seconds: float = Field(20.0, gt=0, le=600)
    total_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    user_agent: str = "aggregator/0.1 (+https://github.com/; feed aggregator)"
    workers: int = Field(8, ge=1, le=256)
    jitter_fraction: float = Field(0.1, ge=0, le=0.5)
    max_backoff: Duration = timedelta(hours=6)
    # how long a claimed source stays with its worker without a renewal; renewed every
    # third of it while the fetch runs, so only a dead worker's sources expire
    lease: Duration = timedelta(seconds=60)
    # processing steps every source's new and changed items pass, before its own
    # (config/steps.py, aggregator/process/)
    process: tuple[StepConfig, ...] = ()


class PerHost(_Frozen):
    """Politeness to one host across the whole cluster; a source postponed for it is not
    in error. Unset: no limit."""

    max_concurrent: int | None = Field(None, ge=1)
    max_per_minute: int | None = Field(None, ge=1)


class Housekeeping(_Frozen):
    """Periodic work done once per cluster (whichever process claims it first)."""

    every: Duration = timedelta(hours=1)
    fetch_log_days: int = Field(30, ge=1)  # fetch-log rows older than this are deleted


class Category(_Frozen):
    title: str = Field(min_length=1)
    description: str = ""
    name: str | None = None  # the media name that files here (e.g. 上海证券报)
    retention: Duration | None = None  # overrides the top-level retention here


class JsonFields(_Frozen):
    """Where each item field lives in a JSON API record (dotted paths)."""

    id: str
    title: str
    link: str | None = None
    published: str | None = None
    summary: str | None = None
    content: str | None = None
    author: str | None = None
    category_from: str | None = None


MARKETS_EXTRA = "pip install 'aggregator[markets]'"


class MarketInterval(_Frozen):
    """Poll on an exchange's calendar: ``trading`` during its sessions (and the opening
    auction), ``closed`` otherwise: nights, lunch breaks, weekends and holidays."""

    trading: Duration
    closed: Duration
    market: str  # an exchange-calendars name: XSHG (Shanghai), XHKG, XNYS, ...

    @field_validator("market")
    @classmethod
    def _known_market(cls, value: str) -> str:
        try:
            import exchange_calendars
        except ImportError as e:
            raise ValueError(
                f"market {value!r} needs the exchange calendars: {MARKETS_EXTRA}"
            ) from e
        names = exchange_calendars.get_calendar_names(include_aliases=True)
        if value not in names:
            close = difflib.get_close_matches(value.upper(), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (e.g. XSHG, XHKG, XNYS)"
            raise ValueError(f"unknown market {value!r}{hint}")
        return value


def _interval_kind(value: Any) -> str:
    return "MarketInterval" if isinstance(value, dict | MarketInterval) else "Duration"


# a duration ("5m"), or the mapping form {trading: 1m, closed: 30m, market: XSHG}
Interval = Annotated[
    Annotated[Duration, Tag("Duration")] | Annotated[MarketInterval, Tag("MarketInterval")],
    Discriminator(_interval_kind),
]


class IdFrom(_Frozen):
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"bad regex {value!r}: {e}") from e
        return value
