"""/status and /status/{source_id} served from a store filled by a real fetch pass
against the local feed server (one source answering, one failing), on SQLite and
PostgreSQL."""

from __future__ import annotations

from starlette.testclient import TestClient

from aggregator.config.settings import parse_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context


def test_status_lists_failing_sources_first_with_their_history(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/good.xml"] = Route((FIXTURES / "rss20.xml").read_bytes())
    settings = parse_settings(
        "allow_networks: [127.0.0.0/8]\ncategories: {news: {title: 新闻}}\nsources:\n"
        f"  - {{id: a-good, url: '{feed_server.url('/good.xml')}', category: news}}\n"
        f"  - {{id: z-gone, url: '{feed_server.url('/gone.xml')}', category: news}}\n"
    )
    ctx = make_context(settings, store)
    run_pass(ctx)
    run_pass(ctx)  # a second fetch each: the history has two rows
    client = TestClient(create_app(settings, store))
    page = client.get("/status")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    assert html.index('data-source="z-gone"') < html.index('data-source="a-good"')
    assert "HTTP 404 Not Found" in html
    assert 'href="http://testserver/status/z-gone"' in html
    assert 'href="http://testserver/category/news.html"' in html
    api = {s["id"]: s for s in client.get("/api/sources").json()}
    assert api["z-gone"]["health"] == "failing"
    assert api["z-gone"]["consecutive_errors"] == 2
    detail = client.get("/status/z-gone")
    assert detail.status_code == 200
    assert detail.text.count("HTTP 404 Not Found") >= 3  # the last error, then two fetches
    good = client.get("/status/a-good").text
    rows = good.split('<table id="fetches">')[1]
    assert rows.count("<tr><td>") == 2
    assert client.get("/status/nobody").status_code == 404
