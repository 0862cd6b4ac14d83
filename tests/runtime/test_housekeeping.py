"""Housekeeping (housekeeping.py): retention per category or global, pruned items that do
not come back, fetch-log pruning, and a job that runs once per period however many
processes ask. Real server, real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from starlette.testclient import TestClient

from aggregator.config.settings import Settings, parse_settings
from aggregator.runtime.housekeeping import (
    retention_cutoffs,
    run_housekeeping,
    run_housekeeping_if_due,
)
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

NOW = datetime.now(UTC).replace(microsecond=0)


def feed(ages: dict[str, timedelta]) -> bytes:
    """An RSS feed with one item per id, published ``age`` ago."""
    items = "".join(
        f"<item><title>{item_id}</title><link>http://h.example/{item_id}</link>"
        f"<guid>http://h.example/{item_id}</guid>"
        f"<pubDate>{format_datetime(NOW - age)}</pubDate></item>"
        for item_id, age in ages.items()
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://h.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def settings_for(server: FeedServer, retention: str = "3d", short: str = "1d") -> Settings:
    return parse_settings(f"""
allow_networks: [127.0.0.0/8]
retention: {retention}
housekeeping: {{every: 1h, fetch_log_days: 7}}
categories:
  keeps: {{title: 长期}}
  short: {{title: 短期, retention: {short}}}
  forever: {{title: 永久, retention: 3650d}}
sources:
  - {{id: a, url: "{server.url("/a.xml")}", category: keeps}}
  - {{id: b, url: "{server.url("/b.xml")}", category: short}}
  - {{id: c, url: "{server.url("/c.xml")}", category: forever}}
""")


def stable_ids(store: SqlStore, category: str) -> set[str]:
    return {item.title for item in store.list_items(category, limit=100)}


def test_cutoffs_per_category_and_global() -> None:
    settings = parse_settings("retention: 3d\ncategories: {a: {title: A, retention: 1d}}\n")
    cutoffs, default = retention_cutoffs(settings, NOW)
    assert cutoffs == {"a": NOW - timedelta(days=1)}
    assert default == NOW - timedelta(days=3)
    assert retention_cutoffs(parse_settings("sources: []\n"), NOW) == ({}, None)


def test_retention_prunes_by_category_and_pruned_items_stay_gone(
    store: SqlStore, feed_server: FeedServer
) -> None:
    day = timedelta(days=1)
    feed_server.routes["/a.xml"] = Route(feed({"a-new": day / 2, "a-old": 4 * day}))
    feed_server.routes["/b.xml"] = Route(feed({"b-new": day / 2, "b-mid": 2 * day}))
    # the same item listed by c (kept 10 years) and b: it only leaves b's feed
    feed_server.routes["/c.xml"] = Route(feed({"b-mid": 2 * day, "c-old": 400 * day}))
    settings = settings_for(feed_server)
    ctx = make_context(settings, store, now=NOW)
    run_pass(ctx)
    client = TestClient(create_app(settings, store))
    etag = client.get("/feeds/short.xml").headers["etag"]
    assert store.count_items() == 5

    counts = run_housekeeping(ctx, NOW)
    assert counts.items == 1  # a-old: nothing keeps it
    assert counts.memberships == 2  # a-old from keeps, b-mid from short
    assert stable_ids(store, "keeps") == {"a-new"}
    assert stable_ids(store, "short") == {"b-new"}
    assert stable_ids(store, "forever") == {"b-mid", "c-old"}
    assert "a-old" not in {i.title for i in store.list_items(limit=100)}
    # the feed changed: a reader holding the old ETag gets the new document
    assert client.get("/feeds/short.xml", headers={"If-None-Match": etag}).status_code == 200

    # the source still lists a-old (with a changed body, so it is parsed again)
    feed_server.routes["/a.xml"] = Route(
        feed({"a-new": day / 2, "a-old": 4 * day, "a-newer": day / 4})
    )
    run_pass(ctx)
    assert "a-old" not in {i.title for i in store.list_items(limit=100)}
    assert stable_ids(store, "keeps") == {"a-new", "a-newer"}


def test_fetch_log_is_pruned(store: SqlStore, feed_server: FeedServer) -> None:
    for name in ("a", "b", "c"):
        feed_server.routes[f"/{name}.xml"] = Route(feed({}))
    settings = settings_for(feed_server)
    run_pass(make_context(settings, store, now=NOW - timedelta(days=10)))
    run_pass(make_context(settings, store, now=NOW))
    assert len(store.list_fetches("a")) == 2
    counts = run_housekeeping(make_context(settings, store, now=NOW), NOW)
    assert counts.fetch_log == 3  # the three rows of ten days ago
    assert len(store.list_fetches("a")) == 1


def test_housekeeping_runs_once_per_period_however_many_processes_ask(
    database_url: str, feed_server: FeedServer
) -> None:
    """Eight "processes" (each its own store and connections) ask at the same moment,
    three periods running: each period exactly one of them runs the job."""
    for name in ("a", "b", "c"):
        feed_server.routes[f"/{name}.xml"] = Route(feed({}))
    settings = settings_for(feed_server)
    stores = [SqlStore(database_url) for _ in range(8)]
    stores[0].upgrade()
    try:
        for period in range(3):
            moment = NOW + timedelta(hours=period, minutes=1)
            winners: list[int] = []
            start = threading.Barrier(len(stores))

            def ask(
                index: int,
                store: SqlStore,
                at: datetime = moment,
                start: threading.Barrier = start,
                winners: list[int] = winners,
            ) -> None:
                ctx = make_context(settings, store, now=at)
                start.wait()
                if run_housekeeping_if_due(ctx) is not None:
                    winners.append(index)

            threads = [threading.Thread(target=ask, args=(i, s)) for i, s in enumerate(stores)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(winners) == 1, (period, winners)
            # asked again within the same period: nobody runs it
            again = make_context(settings, stores[1], now=moment + timedelta(minutes=30))
            assert run_housekeeping_if_due(again) is None
    finally:
        for store in stores:
            store.close()
