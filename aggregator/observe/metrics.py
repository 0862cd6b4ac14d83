"""The Prometheus metrics, defined once, and their text exposition (prometheus-client).

Counters and histograms are kept in the process that sees the event: the fetching
process (``run``, ``worker``) counts fetches, items and commit batches through the
scheduler's outcome callback; each server process counts its requests and render-cache
lookups. Recording is an increment or an observation per fetch or per request, never
per item. Gauges that describe the database (sources by health, schedule lag) are not
kept in memory: they are computed from the store when ``/metrics`` is scraped (one read
of the sources table and one of the oldest unclaimed due time).

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set before this module is first
imported, prometheus-client keeps every value in memory-mapped files in that directory
and a scrape of any process adds up all of them (its multiprocess mode). ``aggregator
serve --workers N`` (N > 1) makes such a directory for its workers and removes it at
exit (``procdir.multiprocess_dir``); an operator who runs ``worker`` and ``serve`` side by side
sets one directory for both (docs/operations.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from aggregator.model import FetchOutcome
from aggregator.observe.procdir import MULTIPROC_ENV
from aggregator.store import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST
HEALTHS = ("ok", "warning", "failing", "new", "disabled", "retired")

# Our metrics live in their own registry (not the library's global one), so a scrape
# shows the same families in one process and in many.
REGISTRY = CollectorRegistry(auto_describe=True)

FETCHES = Counter(
    "aggregator_fetches",
    "Fetches by outcome (ok, not_modified, unchanged, error, ...) and HTTP status class.",
    ["outcome", "status_class"],
    registry=REGISTRY,
)
FETCH_SECONDS = Histogram(
    "aggregator_fetch_duration_seconds",
    "Time from request to recorded outcome, per fetch.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
ITEMS = Counter(
    "aggregator_items",
    "Items written new or updated, or dropped by processing steps.",
    ["change"],
    registry=REGISTRY,
)
COMMIT_BATCH = Histogram(
    "aggregator_group_commit_batch_size",
    "Fetch writes committed in one group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "aggregator_http_requests",
    "HTTP requests by route template and status code.",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "aggregator_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
RENDER_CACHE = Counter(
    "aggregator_render_cache_lookups",
    "Render-cache lookups: hit, miss (rendered), or fast (answered before routing).",
    ["result"],
    registry=REGISTRY,
)
_NEW = ITEMS.labels(change="new")
_UPDATED = ITEMS.labels(change="updated")
_DROPPED = ITEMS.labels(change="dropped")
_FETCH_CHILDREN: dict[tuple[str, str], Any] = {}
CACHE_HIT = RENDER_CACHE.labels(result="hit")
CACHE_MISS = RENDER_CACHE.labels(result="miss")
CACHE_FAST = RENDER_CACHE.labels(result="fast")


def status_class(http_status: int | None) -> str:
    """``2xx`` .. ``5xx``, or ``none`` when no HTTP answer came (a network error)."""
    if http_status is None or not 100 <= http_status <= 599:
        return "none"
    return f"{http_status // 100}xx"


def record_outcome(outcome: FetchOutcome) -> None:
    """Count one fetch: the scheduler's ``on_outcome`` hook (a few increments)."""
    key = (outcome.kind.value, status_class(outcome.http_status))
    counter = _FETCH_CHILDREN.get(key)
    if counter is None:  # .labels() costs more than the increment; the keys are few
        counter = _FETCH_CHILDREN.setdefault(key, FETCHES.labels(*key))
    counter.inc()
    FETCH_SECONDS.observe(outcome.duration_seconds)
    if outcome.new_count:
        _NEW.inc(outcome.new_count)
    if outcome.updated_count:
        _UPDATED.inc(outcome.updated_count)
    if outcome.dropped_count:
        _DROPPED.inc(outcome.dropped_count)


def record_batch(size: int) -> None:
    """One group-commit transaction of ``size`` fetch writes."""
    COMMIT_BATCH.observe(size)


class StoreCollector:
    """The gauges read from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        health = GaugeMetricFamily(
            "aggregator_sources", "Configured sources by health.", labels=["health"]
        )
        counts = dict.fromkeys(HEALTHS, 0)
        for status in self.store.list_source_status():
            counts[status.health] = counts.get(status.health, 0) + 1
        for name, count in counts.items():
            health.add_metric([name], count)
        yield health
        oldest = self.store.find_oldest_unclaimed_due(now)
        lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "aggregator_schedule_lag_seconds",
            "Now minus the oldest due time of an enabled source no process has claimed.",
            value=lag,
        )


class _Collectors:
    def __init__(self, collectors: Iterable[object]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()  # type: ignore[attr-defined]


def exposition(store: Store | None) -> bytes:
    """The text a scrape gets: this process's metrics, or every process's in
    multiprocess mode, then the database's gauges (when a store is given)."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Collectors([REGISTRY]))
    if store is not None:
        registry.register(StoreCollector(store))
    return generate_latest(registry)
