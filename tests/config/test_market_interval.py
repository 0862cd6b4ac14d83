"""``interval: {trading, closed, market}``: typed, frozen, one-line errors."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest

from aggregator.config.parts import MarketInterval
from aggregator.config.settings import parse_settings
from aggregator.errors import ConfigError


def _config(interval: str) -> str:
    return (
        "categories:\n  c: {title: C}\n"
        f"sources:\n  - id: a\n    url: http://x/\n    category: c\n    interval: {interval}\n"
    )


def test_the_mapping_form_is_parsed() -> None:
    source = parse_settings(_config("{trading: 1m, closed: 30m, market: XSHG}")).sources[0]
    assert source.interval == MarketInterval(
        trading=timedelta(minutes=1), closed=timedelta(minutes=30), market="XSHG"
    )
    assert source.market_interval() is source.interval
    with pytest.raises(ValueError, match="frozen"):
        source.interval.trading = timedelta(1)  # type: ignore[union-attr,misc]


@pytest.mark.parametrize(
    ("interval", "problem"),
    [
        ("5x", "sources[0].interval: bad duration '5x'"),
        ("{trading: 1m, closed: 3x, market: XSHG}", "sources[0].interval.closed: bad duration"),
        ("{trading: 1m, closed: 30m, market: xshg}",
         "sources[0].interval.market: unknown market 'xshg' (did you mean 'XSHG'?)"),
        ("{trading: 1m, market: XSHG}", "sources[0].interval.closed: missing required key"),
        ("{trading: 1m, closed: 30m, market: XSHG, every: 1m}",
         "sources[0].interval.every: unknown key"),
    ],
)  # fmt: skip
def test_one_line_errors(interval: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_config(interval))
    (line,) = caught.value.problems
    assert line.startswith(f"<config>:7: {problem}")


def test_without_the_library_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)  # as if not installed
    with pytest.raises(ConfigError) as caught:
        parse_settings(_config("{trading: 1m, closed: 30m, market: XSHG}"))
    assert caught.value.problems == [
        "<config>:7: sources[0].interval.market: market 'XSHG' needs the exchange calendars: "
        "pip install 'aggregator[markets]'"
    ]


@pytest.mark.parametrize(
    ("interval", "schedule"),
    [
        ("{trading: 1m, closed: 30m, market: XSHG}", "XSHG 1m/30m"),
        ("90s", "every 90s"),
        ("2h", "every 2h"),
    ],
)
def test_schedule_for_people(interval: str, schedule: str) -> None:
    settings = parse_settings(_config(interval))
    assert settings.sources[0].schedule(settings.defaults) == schedule
