"""Tickers end to end: feeds served from tests/feedserver.py, fetched through the real
path (run_pass), and the ticker feed, API filter and categories served back (SQLite and
PostgreSQL). /feeds/ticker/600519.SH.xml holds exactly the items naming Kweichow Moutai
by code or by name."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from starlette.testclient import TestClient

from aggregator.config.settings import parse_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import ROOT
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

ITEMS = [
    # (guid, title, description, names Moutai)
    ("m-code", "贵州茅台(600519)发布年报", "净利润增长。", True),
    ("m-name", "白酒板块走强", "贵州茅台与五粮液领涨。", True),
    ("m-suffix", "北向资金加仓", "<p>资金流入600519.SH超过10亿元。</p>", True),
    ("m-prefix", "龙虎榜", "SH600519登上龙虎榜。", True),
    ("amount", "公司营收", "全天成交额600519万元。", False),
    ("phone", "联系方式", "联系电话：021-60051900。", False),
    ("href", "链接", '<a href="http://x/600519.SH">详情</a>', False),
    ("other", "宁德时代(300750)获增持", "电池出货增长。", False),
    ("plain", "央行开展逆回购", "6000亿元MLF操作。", False),
]


def _rss(items: list[tuple[str, str, str, bool]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>http://news.example/{guid}</link>"
        f"<guid isPermaLink='false'>{guid}</guid><description><![CDATA[{text}]]></description>"
        f"<pubDate>Tue, 25 Jan 2022 1{n}:00:00 +0800</pubDate></item>"
        for n, (guid, title, text, _) in enumerate(items)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
        f"<link>http://news.example/</link><description>d</description>{entries}"
        "</channel></rss>"
    ).encode()


@pytest.fixture
def client(store: SqlStore, feed_server: FeedServer) -> TestClient:
    feed_server.routes["/a.xml"] = Route(_rss(ITEMS[:5]))
    feed_server.routes["/b.xml"] = Route(_rss(ITEMS[5:]))
    settings = parse_settings(
        f"""
site_url: http://news.example
allow_networks: [127.0.0.0/8]
ticker_names: config/ticker_names.csv
categories:
  a: {{title: A}}
  b: {{title: B}}
sources:
  - {{id: a, url: "{feed_server.url("/a.xml")}", category: a}}
  - {{id: b, url: "{feed_server.url("/b.xml")}", category: b}}
""",
        base_dir=ROOT,
    )
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.error is None for o in outcomes), outcomes
    return TestClient(create_app(settings, store))


def test_the_moutai_feed_holds_exactly_the_items_naming_it(client: TestClient) -> None:
    response = client.get("/feeds/ticker/600519.SH.xml")
    assert response.status_code == 200
    channel = ET.fromstring(response.content).find("channel")
    assert channel is not None
    guids = {item.findtext("guid") for item in channel.iter("item")}
    assert guids == {f"guid:a:{guid}" for guid, _, _, moutai in ITEMS if moutai}
    for item in channel.iter("item"):
        tickers = [c.text for c in item.iter("category") if c.get("domain") == "ticker"]
        assert "600519.SH" in tickers
    assert channel.findtext("title") == "600519.SH 相关新闻"
    # the same in Atom and JSON Feed, with the codes as categories and tags
    atom = ET.fromstring(client.get("/feeds/ticker/600519.SH.atom").content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert len(atom.findall("a:entry", ns)) == 4
    schemes = {c.get("term") for c in atom.iterfind("a:entry/a:category[@scheme='ticker']", ns)}
    assert schemes == {"000858.SZ", "600519.SH"}
    feed = client.get("/feeds/ticker/600519.SH.json").json()
    assert all("600519.SH" in item["tags"] for item in feed["items"])
    # written another way, the same code
    assert client.get("/feeds/ticker/SH600519.xml").content == response.content
    assert client.get("/feeds/ticker/12345.xml").status_code == 404


def test_api_items_by_ticker(client: TestClient) -> None:
    found = client.get("/api/items", params={"ticker": "300750.SZ"}).json()["items"]
    assert [item["title"] for item in found] == ["宁德时代(300750)获增持"]
    assert found[0]["tickers"] == ["300750.SZ"]
    everything = client.get("/api/items").json()["items"]
    assert len(everything) == len(ITEMS)
    assert client.get("/api/items", params={"ticker": "nope"}).status_code == 400


def test_ticker_page_and_item_links(client: TestClient) -> None:
    page = client.get("/ticker/600519.SH.html")
    assert page.status_code == 200
    assert page.text.count('<li><a href="http://news.example/item/') == 4
    assert 'href="http://news.example/feeds/ticker/600519.SH.atom"' in page.text
    assert client.get("/ticker/999999.html").status_code == 404
    (item,) = client.get("/api/items", params={"ticker": "300750.SZ"}).json()["items"]
    html = client.get(item["page_url"]).text
    assert '<a href="http://news.example/ticker/300750.SZ.html" rel="tag">300750.SZ</a>' in html
