"""The HTML pages as the app serves them, over the bundled samples (an RSS feed, an Atom
feed and a JSON list API) ingested through the real path, on SQLite and PostgreSQL: what
a new user sees on the first visit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.config.settings import Settings, load_settings, parse_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import HOME_LATEST_ITEMS, create_app
from aggregator.store.sql import SqlStore
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

ROOT = Path(__file__).resolve().parents[2]
ITEM_LINK = re.compile(r'<li><a href="http://testserver/item/(\d+)\.html">')


@pytest.fixture
def samples(store: SqlStore) -> tuple[Settings, SqlStore]:
    settings = load_settings(ROOT / "config" / "sources.yaml")
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.error is None for o in outcomes), outcomes
    return settings, store


@pytest.fixture
def client(samples: tuple[Settings, SqlStore]) -> TestClient:
    return TestClient(create_app(*samples))


def section(html: str, heading: str) -> str:
    """The <section> whose heading text is ``heading``."""
    for part in html.split("<section")[1:]:
        if re.search(rf"<h2>(?:<a [^>]*>)?{re.escape(heading)}<", part):
            return part.split("</section>")[0]
    raise AssertionError(f"no section {heading!r}")


def test_home_opens_with_the_latest_items_across_outlets(
    client: TestClient, samples: tuple[Settings, SqlStore]
) -> None:
    html = client.get("/").text
    headings = re.findall(r"<h2>(?:<a [^>]*>)?([^<]*)", html)
    assert headings[0] == "最新"
    assert "上海证券报新闻" in headings[1:]
    latest = section(html, "最新")
    newest = samples[1].list_feed_items(None, HOME_LATEST_ITEMS)
    assert [int(i) for i in ITEM_LINK.findall(latest)] == [i.item_id for i in newest]
    outlets = set(re.findall(r"</time> · ([^<]+)</span>", latest))
    assert len(outlets) > 3  # every outlet, not one


def test_json_api_items_show_their_outlet(
    client: TestClient, samples: tuple[Settings, SqlStore]
) -> None:
    """The JSON API sample gives no author; its items are filed by mediaName."""
    store = samples[1]
    only_api = [
        i
        for i in store.list_feed_items(None, 100)
        if i.source_id == "eastmoney-api" and i.author is None
    ]
    assert only_api
    infos = store.find_categories(None)
    for item in only_api:
        (slug,) = item.category_slugs
        outlet = infos[slug].name
        assert outlet
        line = f'<a href="http://testserver/item/{item.item_id}.html">'
        category = client.get(f"/category/{slug}.html").text
        row = category[category.index(line) :].split("</li>")[0]
        assert row.endswith(f"</time> · {outlet}</span>"), row
        page = client.get(f"/item/{item.item_id}.html").text
        assert re.search(rf"</time> · {re.escape(outlet)}( ·|</p>)", page)


def test_times_on_pages_carry_their_offset(client: TestClient) -> None:
    for path in ("/", "/category/shanghaizhengquanbao.html"):
        html = client.get(path).text
        times = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', html)
        assert times, path
        for iso, shown in times:
            assert iso.endswith("+08:00"), iso
            assert shown.endswith(" UTC+08:00"), shown


def test_item_pages_link_their_feeds_and_walk_the_category_page_order(
    client: TestClient,
) -> None:
    slug = "shanghaizhengquanbao"
    listed = [int(i) for i in ITEM_LINK.findall(client.get(f"/category/{slug}.html").text)]
    assert len(listed) >= 3
    walked, path = [], f"/item/{listed[0]}.html"
    while True:
        html = client.get(path).text
        walked.append(int(re.findall(r"/item/(\d+)\.html", path)[0]))
        head = html[: html.index("</head>")]
        for ext in ("xml", "atom", "json"):
            assert f'href="http://testserver/feeds/{slug}.{ext}"' in head
        found = re.search(r'<a href="http://testserver(/item/\d+\.html)" rel="next">', html)
        if found is None:
            break
        path = found[1]
    assert walked == listed
    last = client.get(f"/item/{listed[-1]}.html").text
    assert f'href="http://testserver/item/{listed[-2]}.html" rel="prev"' in last


def test_an_item_page_changes_when_a_newer_item_arrives_beside_it(
    store: SqlStore, feed_server: FeedServer
) -> None:
    def feed(*days: int) -> bytes:
        items = "".join(
            f"<item><title>第{day}天</title><link>http://x.example/{day}</link>"
            f"<pubDate>{day:02d} Jan 2022 10:00:00 +0800</pubDate></item>"
            for day in days
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t'
            f"</title><link>http://x.example/</link><description>d</description>{items}"
            "</channel></rss>"
        ).encode()

    feed_server.routes["/f.xml"] = Route(feed(1))
    settings = parse_settings(
        "allow_networks: [127.0.0.0/8]\ncategories:\n  news: {title: 新闻}\n"
        f'sources:\n  - {{id: f, url: "{feed_server.url("/f.xml")}", category: news}}\n'
    )
    run_pass(make_context(settings, store))
    client = TestClient(create_app(settings, store))
    (item,) = store.list_feed_items(("news",), 10)
    first = client.get(f"/item/{item.item_id}.html")
    assert 'rel="prev"' not in first.text
    feed_server.routes["/f.xml"] = Route(feed(2, 1))
    run_pass(make_context(settings, store))
    validator = {"If-None-Match": first.headers["etag"]}
    again = client.get(f"/item/{item.item_id}.html", headers=validator)
    assert again.status_code == 200  # not a 304 for the page without its new neighbour
    assert 'rel="prev">← 较新：第2天</a>' in again.text
