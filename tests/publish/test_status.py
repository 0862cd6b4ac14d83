"""The status pages' order and escaping (pure: SourceStatus rows in, HTML out)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.publish.status import render_source_status, render_status, sorted_for_status
from aggregator.store import FetchRecord, SourceStatus

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def row(source_id: str, **changes: object) -> SourceStatus:
    values: dict[str, object] = {
        "source_id": source_id,
        "url": f"http://example.com/{source_id}.xml",
        "category": "news",
        "enabled": True,
        "last_fetch_at": NOW,
        "last_outcome": "ok",
        "last_status": 200,
        "last_error": None,
        "next_due_at": NOW,
        "item_count": 3,
        "consecutive_errors": 0,
    }
    values.update(changes)
    return SourceStatus(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [row("a"), row("b", consecutive_errors=1, last_error="x")],
            ["b", "a"],
            id="failing-before-ok",
        ),
        pytest.param(
            [
                row("f1", consecutive_errors=1),
                row("f5", consecutive_errors=5),
                row("w", last_warning="no items"),
                row("n", last_fetch_at=None),
                row("d", enabled=False),
                row("r", retired_at=NOW),
            ],
            ["f5", "f1", "w", "n", "r", "d"],
            id="every-health",
        ),
        pytest.param([row("b"), row("a")], ["a", "b"], id="by-id-within-a-health"),
    ],
)
def test_failing_sources_come_first(rows: list[SourceStatus], expected: list[str]) -> None:
    assert [s.source_id for s in sorted_for_status(rows)] == expected


def test_errors_and_urls_are_escaped() -> None:
    hostile = row(
        "x",
        url="http://e.com/<script>alert(1)</script>",
        consecutive_errors=2,
        last_error="ParseError: <img src=x onerror=alert(1)>",
    )
    page = render_status([row("ok"), hostile], "http://testserver", NOW).decode()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.index('data-source="x"') < page.index('data-source="ok"')
    fetch = FetchRecord("x", NOW, "error", 500, 0, 0, 0, "HTTPStatusError: <b>500</b>")
    detail = render_source_status(hostile, [fetch], "http://testserver").decode()
    assert "<script>alert(1)" not in detail
    assert "HTTPStatusError: &lt;b&gt;500&lt;/b&gt;" in detail
