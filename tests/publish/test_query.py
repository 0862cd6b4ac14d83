"""Reading request parameters (publish/query.py): pure, table-driven."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.errors import FilterBudgetError, QueryError
from aggregator.model import StoredItem
from aggregator.publish.query import (
    MAX_INT64,
    FeedQuery,
    FilterBudget,
    decode_cursor,
    encode_cursor,
    filter_items,
    matches,
    parse_feed_query,
    parse_limit,
    parse_pattern,
    parse_since,
    whole_number,
)


@pytest.mark.parametrize(
    ("raw", "maximum", "expected"),
    [
        ("0", MAX_INT64, 0),
        ("42", MAX_INT64, 42),
        ("0042", MAX_INT64, 42),
        ("0" * 40 + "7", MAX_INT64, 7),
        (str(MAX_INT64), MAX_INT64, MAX_INT64),
        (str(MAX_INT64 + 1), MAX_INT64, None),
        ("9" * 5000, MAX_INT64, None),
        ("501", 500, None),
        ("500", 500, 500),
        ("", MAX_INT64, None),
        ("-1", MAX_INT64, None),
        ("+1", MAX_INT64, None),
        (" 1", MAX_INT64, None),
        ("1e3", MAX_INT64, None),
        ("²", MAX_INT64, None),
        ("١٢٣", MAX_INT64, None),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_whole_number(raw: str, maximum: int, expected: int | None) -> None:
    assert whole_number(raw, maximum) == expected


@given(st.text(max_size=30))
def test_whole_number_never_raises(raw: str) -> None:
    value = whole_number(raw)
    assert value is None or 0 <= value <= MAX_INT64


@pytest.mark.parametrize(
    "raw",
    [
        str(MAX_INT64 + 1),
        "99999999999999999999999999",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "yesterday",
        "²",
    ],
)
def test_since_out_of_range_is_a_query_error(raw: str) -> None:
    with pytest.raises(QueryError, match="since must be"):
        parse_since(raw)


def test_since_reads_seq_and_times() -> None:
    assert parse_since(str(MAX_INT64)) == (MAX_INT64, None)
    assert parse_since("2024-01-01T08:00:00+08:00") == (None, datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("raw", ["0", "-1", "x", "²", str(2**64)])
def test_limit_out_of_range_is_a_query_error(raw: str) -> None:
    with pytest.raises(QueryError, match="limit must be a whole number from 1 to 500"):
        parse_limit(raw)


@pytest.mark.parametrize("text", [f"v1:{MAX_INT64 + 1}", "v1:-1", "v1:²", "v2:1", "v1:"])
def test_a_forged_cursor_is_a_query_error(text: str) -> None:
    forged = base64.urlsafe_b64encode(text.encode()).decode()
    with pytest.raises(QueryError, match="cursor is not one this service gave out"):
        decode_cursor(forged)


@given(st.integers(min_value=0, max_value=MAX_INT64))
def test_cursors_round_trip(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


def item(title: str, content: str = "") -> StoredItem:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    return StoredItem(
        item_id=1,
        stable_id="s",
        seq=1,
        title=title,
        link=None,
        guid=None,
        summary=None,
        content=content,
        author=None,
        published_at=moment,
        published_offset_minutes=0,
        first_seen_at=moment,
        updated_at=moment,
        update_count=0,
        source_id="src",
        category_slugs=(),
    )


@pytest.mark.parametrize(
    ("params", "title", "content", "kept"),
    [
        ({"q": "网络安全"}, "关于网络安全的新闻", "", True),
        ({"q": "网络安全"}, "别的", "<p>正文提到<b>网络</b>安全</p>", False),  # tags split words
        ({"q": "网络\\s+安全"}, "别的", "<p>正文提到<b>网络</b>安全</p>", True),
        ({"q": "APPLE"}, "apple pie", "", True),  # case-insensitive
        ({"q": "基金|债券"}, "债券市场", "", True),
        ({"q": "&amp;"}, "a & b", "", False),  # entities are read, not searched as markup
        ({"q": "a & b"}, "x", "<p>a &amp; b</p>", True),
        ({"exclude": "广告"}, "这是广告", "", False),
        ({"q": "新闻", "exclude": "广告"}, "新闻", "<p>广告</p>", False),
        ({"q": "(x+x+)+y"}, "x" * 5000, "", False),  # linear in RE2
    ],
)
def test_filters(params: dict[str, str], title: str, content: str, kept: bool) -> None:
    assert matches(parse_feed_query(params), item(title, content)) is kept


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("(", "missing )"),
        ("(a)\\1", "invalid escape sequence"),  # backreferences: not in RE2
        ("(?=a)", "invalid perl operator"),  # lookaround: not in RE2
        ("a{2000}", "invalid repetition size"),
        ("[\\p{Han}\\w]{2,1000}", "pattern too large"),  # past PATTERN_MAX_MEM
    ],
)
def test_patterns_outside_re2_are_query_errors(raw: str, reason: str) -> None:
    with pytest.raises(QueryError, match="bad pattern in q: ") as caught:
        parse_pattern("q", raw)
    assert reason in str(caught.value)
    assert "no backreferences or lookaround" in str(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_is_for_the_whole_request() -> None:
    clock = Clock()
    budget = FilterBudget(1.0, clock)
    query = FeedQuery(include=parse_pattern("q", "x"))
    items = [item("x"), item("y")]
    assert filter_items(query, items, budget) == items[:1]
    clock.now += 0.9
    assert filter_items(query, items, budget) == items[:1]  # 0.9 s of 1 spent
    clock.now += 0.2
    with pytest.raises(FilterBudgetError, match="took more than 1 s"):
        filter_items(query, items, budget)


def test_a_cancelled_budget_stops_at_the_next_item() -> None:
    budget = FilterBudget(60.0)
    query = FeedQuery(include=parse_pattern("q", "x"))
    seen: list[str] = []

    def items() -> Iterator[StoredItem]:
        for n in range(10):
            seen.append(str(n))
            if n == 3:
                budget.cancel()  # as the web app does when the client disconnects
            yield item("x")

    with pytest.raises(FilterBudgetError, match="the client went away"):
        filter_items(query, items(), budget)
    assert seen == ["0", "1", "2", "3"]
