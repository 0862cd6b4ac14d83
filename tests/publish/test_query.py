"""Reading request parameters (publish/query.py): pure, table-driven."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.errors import QueryError
from aggregator.publish.query import (
    MAX_INT64,
    decode_cursor,
    encode_cursor,
    parse_limit,
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
