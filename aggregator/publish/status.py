"""The status pages for operators: every source with its health, failing ones first
(``/status``), and one source's recent fetches from the log (``/status/{source_id}``).
The rows are the ones ``/api/sources`` gives (``SourceStatus``); Jinja2 autoescapes
every URL, error and warning, which come from feeds and servers we do not control."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aggregator.publish.pages import ENV, SITE_TITLE
from aggregator.store import FetchRecord, SourceStatus

# The order of the list: what needs a look first.
HEALTH_ORDER = {"failing": 0, "warning": 1, "new": 2, "ok": 3, "retired": 4, "disabled": 5}
FETCH_HISTORY = 50  # fetches shown on a source's page


def sorted_for_status(statuses: Sequence[SourceStatus]) -> list[SourceStatus]:
    """Failing first (most consecutive errors first), then warnings, new, ok, retired,
    disabled; by id within each."""
    return sorted(
        statuses,
        key=lambda s: (HEALTH_ORDER.get(s.health, 9), -s.consecutive_errors, s.source_id),
    )


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment is not None else "—"


def render_status(
    statuses: Sequence[SourceStatus], root: str, now: datetime, site_title: str = SITE_TITLE
) -> bytes:
    rows = sorted_for_status(statuses)
    counts: dict[str, int] = {}
    for status in rows:
        counts[status.health] = counts.get(status.health, 0) + 1
    html = ENV.get_template("status.html").render(
        rows=rows, counts=counts, root=root, now=when(now), when=when, site_title=site_title
    )
    return html.encode("utf-8")


def render_source_status(
    status: SourceStatus, fetches: Sequence[FetchRecord], root: str, site_title: str = SITE_TITLE
) -> bytes:
    html = ENV.get_template("status_source.html").render(
        s=status, fetches=fetches, root=root, when=when, site_title=site_title
    )
    return html.encode("utf-8")
