"""/metrics: the pure pieces table-driven, then a real dispatcher fetching from the
local feed server while the app is scraped, and a real ``aggregator serve --workers 2``
scraped over a socket (prometheus-client's multiprocess mode adding up both workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from aggregator.config.settings import parse_settings
from aggregator.ingest.fetcher import Fetcher
from aggregator.ingest.update import Context
from aggregator.model import FetchOutcome, OutcomeKind
from aggregator.observe.metrics import record_batch, record_outcome, status_class
from aggregator.runtime.scheduler import Dispatcher, source_plans
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route
from tests.runtime.test_scheduler import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, keyed by name and sorted labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(200, "2xx", id="ok"),
        pytest.param(304, "3xx", id="not-modified"),
        pytest.param(404, "4xx", id="not-found"),
        pytest.param(503, "5xx", id="unavailable"),
        pytest.param(None, "none", id="no-answer"),
        pytest.param(0, "none", id="nonsense"),
    ],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_one_outcome_is_a_few_increments() -> None:
    from aggregator.observe.metrics import REGISTRY

    def get(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        get("aggregator_fetches_total", outcome="ok", status_class="2xx"),
        get("aggregator_items_total", change="new"),
        get("aggregator_items_total", change="dropped"),
        get("aggregator_fetch_duration_seconds_count"),
        get("aggregator_group_commit_batch_size_sum"),
    )
    now = datetime.now(UTC)
    record_outcome(
        FetchOutcome(
            "s", OutcomeKind.OK, now, 0.3, now, http_status=200, new_count=4, dropped_count=2
        )
    )
    record_batch(5)
    after = (
        get("aggregator_fetches_total", outcome="ok", status_class="2xx"),
        get("aggregator_items_total", change="new"),
        get("aggregator_items_total", change="dropped"),
        get("aggregator_fetch_duration_seconds_count"),
        get("aggregator_group_commit_batch_size_sum"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 4, 2, 1, 5]


def test_metrics_move_during_a_real_fetch_pass(feed_server: FeedServer, tmp_path: Path) -> None:
    body = (FIXTURES / "rss20.xml").read_bytes()
    feed_server.routes["/fast.xml"] = Route(body)
    feed_server.routes["/slow.xml"] = Route(body, delay_seconds=1.5)
    settings = parse_settings(
        "database: sqlite:///unused\n"
        "defaults: {workers: 4, timeout_seconds: 5, total_timeout_seconds: 5}\n"
        "allow_networks: [127.0.0.0/8]\ncategories: {news: {title: 新闻}}\n"
        "sources:\n"
        f"  - {{id: fast, url: '{feed_server.url('/fast.xml')}', category: news}}\n"
        f"  - {{id: slow, url: '{feed_server.url('/slow.xml')}', category: news}}\n"
        f"  - {{id: gone, url: '{feed_server.url('/missing.xml')}', category: news}}\n"
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.upgrade()
    client = TestClient(create_app(settings, store))
    first = samples(client.get("/metrics").text)
    ctx = Context(settings=settings, store=store, fetcher=Fetcher("t"), owner="me")
    dispatcher = Dispatcher(ctx, on_outcome=record_outcome, on_batch=record_batch)
    dispatcher.start()
    try:
        assert wait_until(lambda: "fast" not in dispatcher.in_flight and _fetched(store) == 2, 10)
        during = client.get("/metrics")
        assert dispatcher.in_flight == {"slow"}  # scraped while the pass still runs
        assert wait_until(lambda: _fetched(store) == 3, 10)
    finally:
        dispatcher.stop()
    last = samples(client.get("/metrics").text)
    middle = samples(during.text)
    assert during.headers["content-type"].startswith("text/plain; version=")
    assert during.headers["cache-control"] == "no-store"

    def moved(found: Samples, name: str, **labels: str) -> float:
        return value(found, name, **labels) - value(first, name, **labels)

    ok = {"outcome": "ok", "status_class": "2xx"}
    assert moved(middle, "aggregator_fetches_total", **ok) == 1
    assert moved(last, "aggregator_fetches_total", **ok) == 2
    assert moved(middle, "aggregator_fetches_total", outcome="error", status_class="4xx") == 1
    assert moved(last, "aggregator_fetch_duration_seconds_count") == 3
    assert moved(last, "aggregator_fetch_duration_seconds_bucket", le="1.0") == 2  # not slow
    assert moved(last, "aggregator_items_total", change="new") > 0
    assert moved(last, "aggregator_group_commit_batch_size_count") >= 1
    assert moved(last, "aggregator_group_commit_batch_size_sum") == 3  # every write, once
    # the database's gauges, read at scrape time
    assert value(first, "aggregator_sources", health="new") == 0  # not synced yet
    assert value(last, "aggregator_sources", health="ok") == 2
    assert value(last, "aggregator_sources", health="failing") == 1
    assert value(last, "aggregator_schedule_lag_seconds") == 0
    # the scrapes themselves were counted, by route template
    assert moved(last, "aggregator_http_requests_total", route="/metrics", status="200") == 2
    store.close()


def _fetched(store: SqlStore) -> int:
    return sum(1 for s in store.list_source_status() if s.last_fetch_at is not None)


def test_schedule_lag_counts_only_unclaimed_sources(tmp_path: Path) -> None:
    settings = parse_settings(
        "database: sqlite:///unused\ncategories: {news: {title: 新闻}}\nsources:\n"
        "  - {id: a, url: 'http://127.0.0.1:9/a.xml', category: news}\n"
        "  - {id: b, url: 'http://127.0.0.1:9/b.xml', category: news}\n"
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.upgrade()
    now = datetime.now(UTC)
    store.sync_config(source_plans(settings), [], now)
    store.set_due_times({"a": now - timedelta(minutes=10), "b": now - timedelta(minutes=2)})
    client = TestClient(create_app(settings, store))
    lag = value(samples(client.get("/metrics").text), "aggregator_schedule_lag_seconds")
    assert 600 <= lag < 660
    assert store.claim_sources(["a"], now, "me", timedelta(minutes=5))
    lag = value(samples(client.get("/metrics").text), "aggregator_schedule_lag_seconds")
    assert 120 <= lag < 180  # a is being fetched: only b waits
    store.close()


def test_requests_are_labelled_by_route_template(tmp_path: Path) -> None:
    settings = parse_settings(
        "database: sqlite:///unused\ncategories: {news: {title: 新闻}}\nsources: []\n"
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.upgrade()
    client = TestClient(create_app(settings, store))
    first = samples(client.get("/metrics").text)
    for path in ("/feeds/all.xml", "/feeds/all.xml", "/feeds/nope.xml", "/nowhere/at/all"):
        client.get(path)
    last = samples(client.get("/metrics").text)

    def moved(name: str, **labels: str) -> float:
        return value(last, name, **labels) - value(first, name, **labels)

    feeds = "/feeds/{name}.{ext}"
    assert moved("aggregator_http_requests_total", route=feeds, status="200") == 2
    assert moved("aggregator_http_requests_total", route=feeds, status="404") == 1
    assert moved("aggregator_http_requests_total", route="unmatched", status="404") == 1
    assert moved("aggregator_http_request_duration_seconds_count", route=feeds) == 3
    # all.xml's first render misses (and so does nope.xml, found unknown while rendering);
    # the repeat is answered before routing (SQLite's fast path)
    assert moved("aggregator_render_cache_lookups_total", result="miss") == 2
    assert moved("aggregator_render_cache_lookups_total", result="fast") == 1
    store.close()


def test_serve_with_two_workers_adds_up_both(tmp_path: Path) -> None:
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'db.sqlite'}\n"
        "categories: {news: {title: 新闻}}\nsources: []\n",
        encoding="utf-8",
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    requests = 40
    try:
        assert wait_until(lambda: _answers(base + "/healthz"), 30), (
            tmp_path / "serve.log"
        ).read_text()
        for _ in range(requests - 1):
            assert _answers(base + "/healthz")  # a new connection each: either worker
        directories = list(temp.glob("aggregator-metrics-*"))
        assert len(directories) == 1
        assert len({p.name.rsplit("_", 1)[1] for p in directories[0].glob("*.db")}) == 2
        for _ in range(6):  # whichever worker answers the scrape sees both workers' counts
            with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                found = samples(response.read().decode())
            route = {"route": "/healthz", "status": "200"}
            assert value(found, "aggregator_http_requests_total", **route) == requests
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()
    assert not list(temp.glob("aggregator-metrics-*"))  # the parent removed it


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        time.sleep(0.1)
        return False
