"""The Publisher without HTTP: it renders what is stored now and caches nothing (the
server does, serve/httpcache.py), and a category page's channel is its own."""

from __future__ import annotations

import pytest

from aggregator.config.settings import parse_settings
from aggregator.publish.publisher import FeedRequest, Publisher, Rendered, UnknownCategoryError
from aggregator.publish.query import FeedQuery
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context


@pytest.fixture
def publisher(store: SqlStore, feed_server: FeedServer) -> Publisher:
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/rss20.xml"] = Route((FIXTURES / "rss20.xml").read_bytes())
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
site_url: http://news.example
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, description: 上证报, name: 上海证券报}}
  misc: {{title: 其他}}
sources:
  - {{id: seed, url: "{feed_server.url("/seed.rss")}", category_from: author}}
  - {{id: rss20, url: "{feed_server.url("/rss20.xml")}", category: misc}}
""")
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.error is None for o in outcomes), outcomes
    return Publisher(settings, store)


def test_render_gives_bytes_and_caches_nothing(
    publisher: Publisher, feed_server: FeedServer
) -> None:
    request = FeedRequest("misc", ("misc",), "xml", FeedQuery())
    first = publisher.render(request)
    assert isinstance(first, Rendered)
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert b"<description>\xe5\x85\xb6\xe4\xbb\x96</description>" in first.body  # the title
    stamp = publisher.stamp(request)
    feed_server.routes["/rss20.xml"].body = feed_server.routes["/rss20.xml"].body.replace(
        b"</channel>", b"<item><title>later</title><link>http://a.example/l</link></item></channel>"
    )
    run_pass(make_context(publisher.settings, publisher.store), ["rss20"])
    assert publisher.stamp(request) > stamp
    again = publisher.render(request)
    assert b"later" in again.body
    assert again.updated >= first.updated
    with pytest.raises(UnknownCategoryError):
        publisher.render(FeedRequest("nope", ("nope",), "xml", FeedQuery()))


def test_a_category_pages_channel(publisher: Publisher) -> None:
    infos = publisher.categories()
    page = FeedRequest("misc", ("misc",), "html", FeedQuery())
    channel = publisher.channel(page, infos, [], "http://site")
    assert channel.title == "其他"
    assert channel.description == ""  # none of its own: the page shows none
    assert channel.self_url == channel.html_url == "http://site/category/misc.html"
    assert channel.feed_url_base == "http://site/feeds/misc"
    feed = FeedRequest("shanghaizhengquanbao", ("shanghaizhengquanbao",), "atom", FeedQuery())
    described = publisher.channel(feed, infos, [], "http://site")
    assert described.description == "上证报"
    assert described.self_url == "http://site/feeds/shanghaizhengquanbao.atom"
