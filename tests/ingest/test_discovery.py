"""Feed autodiscovery: the pure link finder, and a site's HTML page served over HTTP on
127.0.0.1 that leads the real fetch path to its feed, adopted as the source's URL."""

from __future__ import annotations

import pytest

from aggregator.cli.passes import _last_words
from aggregator.config.settings import parse_settings
from aggregator.ingest.discovery import find_feed_link
from aggregator.model import OutcomeKind
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

HTML = "text/html; charset=utf-8"


def page(*links: str) -> bytes:
    head = "".join(links)
    body = f"<!DOCTYPE html><html><head><title>站点</title>{head}</head><body>正文</body></html>"
    return body.encode()


@pytest.mark.parametrize(
    ("links", "page_url", "expected"),
    [
        (
            ['<link rel="alternate" type="application/rss+xml" href="/feed.xml">'],
            "http://site.example/news/",
            "http://site.example/feed.xml",
        ),
        (
            [
                '<link rel="stylesheet" href="/s.css">',
                '<link rel="alternate" type="text/html" hreflang="en" href="/en/">',
                '<link rel="Alternate" type="application/atom+xml; charset=utf-8" href="a.atom">',
                '<link rel="alternate" type="application/rss+xml" href="/second.xml">',
            ],
            "http://site.example/news/",
            "http://site.example/news/a.atom",
        ),
        (
            ['<link rel="alternate" type="application/feed+json" href="https://f.example/j">'],
            "http://site.example/",
            "https://f.example/j",
        ),
        (
            ['<link rel="alternate" type="application/rss+xml" href="file:///etc/passwd">'],
            "http://site.example/",
            None,
        ),
        (['<link rel="alternate" type="application/rss+xml">'], "http://site.example/", None),
        ([], "http://site.example/", None),
    ],
    ids=[
        "relative rss",
        "first feed type wins",
        "json feed",
        "no file: from http",
        "no href",
        "none",
    ],
)
def test_the_first_feed_link_of_a_supported_type(
    links: list[str], page_url: str, expected: str | None
) -> None:
    assert find_feed_link(page(*links), HTML, page_url) == expected


def test_sources_lists_the_url_fetched_when_it_is_not_the_configured_one() -> None:
    assert _last_words(None, None, "http://a/feed.xml", "http://a/") == "fetches http://a/feed.xml"
    assert _last_words("boom", None, "http://a/", "http://a/") == "boom"
    assert _last_words(None, "w", "http://a/f", "http://a/") == "warning: w; fetches http://a/f"


def test_a_site_page_is_followed_to_its_feed_and_the_feed_url_adopted(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/"] = Route(
        page('<link rel="alternate" type="application/rss+xml" title="要闻" href="/rss20.xml">'),
        content_type=HTML,
    )
    feed_server.routes["/rss20.xml"] = Route((FIXTURES / "rss20.xml").read_bytes())
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories:
  news: {{title: 新闻}}
sources:
  - {{id: site, url: "{feed_server.url("/")}", category: news}}
""")
    ctx = make_context(settings, store)
    ((first,), _) = run_pass(ctx)
    assert first.kind is OutcomeKind.OK, first
    assert first.new_count == 4  # rss20.xml's four items
    feed_url = feed_server.url("/rss20.xml")
    assert first.warnings[0] == (
        f"feed discovered on the HTML page: {feed_url} (fetched from now on)"
    )
    state = store.get_source_state("site")
    assert state.effective_url == feed_url
    (status,) = store.list_source_status()
    assert status.url == feed_url
    # the next fetch goes straight to the feed: the page is not asked again
    store.request_fetch("site", ctx.now())
    ((second,), _) = run_pass(ctx)
    assert second.kind is OutcomeKind.NOT_MODIFIED, second
    assert len(feed_server.requests_to("/")) == 1
    assert len(feed_server.requests_to("/rss20.xml")) == 2


def test_a_page_naming_no_feed_stays_a_parse_error(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/"] = Route(page(), content_type=HTML)
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories:
  news: {{title: 新闻}}
sources:
  - {{id: site, url: "{feed_server.url("/")}", category: news}}
""")
    ((outcome,), _) = run_pass(make_context(settings, store))
    assert outcome.error is not None
    assert "ParseError: an HTML page, not a feed" in outcome.error
