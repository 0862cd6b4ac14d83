"""The processing stage end to end: a real HTTP server on 127.0.0.1 serving feeds and
article pages (the project's own, config/samples/articles/), the real fetcher, parser and
store (SQLite and PostgreSQL), passes run as ``aggregator fetch`` runs them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from aggregator.config.settings import Settings, parse_settings
from aggregator.model import OutcomeKind
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

ARTICLES = Path(__file__).resolve().parents[2] / "config" / "samples" / "articles"
HTML = "text/html; charset=utf-8"


def rss(items: Sequence[tuple[str, str, str, str]], title: str = "测试") -> bytes:
    """An RSS 2.0 feed of (guid, title, link, description HTML) items."""
    entries = "".join(
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{escape(t)}</title>"
        f"<link>{escape(link)}</link><description>{escape(body)}</description>"
        "<pubDate>Tue, 25 Jan 2022 09:20:00 +0800</pubDate></item>"
        for guid, t, link, body in items
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{title}"
        f"</title><link>https://news.example.cn/</link>{entries}</channel></rss>"
    ).encode()


def settings_for(server: FeedServer, steps: str, path: str = "/feed.xml") -> Settings:
    return parse_settings(
        f"""
allow_networks: [127.0.0.0/8]
categories:
  news: {{title: 新闻}}
sources:
  - id: src
    url: {server.url(path)}
    category: news
    process:
{steps}
"""
    )


def article(name: str) -> Route:
    return Route((ARTICLES / f"{name}.html").read_bytes(), content_type=HTML)


FULL_TEXT = "      - full_text: {min_chars: 100, selector: 'div#ContentBody'}"


def test_teasers_become_full_articles_each_page_fetched_once_over_three_passes(
    store: SqlStore, feed_server: FeedServer
) -> None:
    for name in ("cs20220125001", "cs20220125002", "cs20220125003"):
        feed_server.routes[f"/article/{name}.html"] = article(name)
    teasers = [
        (name, f"标题{name}", feed_server.url(f"/article/{name}.html"), "<p>导语。</p>")
        for name in ("cs20220125001", "cs20220125002")
    ]
    feed_server.routes["/feed.xml"] = Route(rss(teasers))
    ctx = make_context(settings_for(feed_server, FULL_TEXT), store)

    run_pass(ctx)
    # the feed changes: a third item, then a new channel title (nothing new)
    third = "cs20220125003"
    teasers.append((third, "标题3", feed_server.url(f"/article/{third}.html"), "<p>导语。</p>"))
    feed_server.routes["/feed.xml"] = Route(rss(teasers))
    run_pass(ctx)
    feed_server.routes["/feed.xml"] = Route(rss(teasers, title="测试二"))
    (outcome,), _ = run_pass(ctx)

    assert outcome.kind is OutcomeKind.OK
    assert outcome.unchanged_count == 3
    for name in ("cs20220125001", "cs20220125002", "cs20220125003"):
        assert len(feed_server.requests_to(f"/article/{name}.html")) == 1, name
    stored = store.find_item("guid:src:cs20220125001")
    assert stored is not None
    assert stored.content is not None
    assert stored.content.startswith('<div class="content">')  # sanitized: no id
    assert "中标利率为2.85%" in stored.content
    assert stored.summary == "<p>导语。</p>"  # the teaser
    for outside in ("首页", "相关阅读", "网友评论", "版权所有"):  # the rest of the page
        assert outside not in stored.content, outside


def test_an_article_page_that_fails_keeps_the_teaser_and_warns(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/article/ok.html"] = article("cs20220125002")
    feed_server.routes["/article/gone.html"] = Route(b"", status=404)
    feed_server.routes["/feed.xml"] = Route(
        rss(
            [
                ("ok", "港股", feed_server.url("/article/ok.html"), "<p>导语一。</p>"),
                ("gone", "债市", feed_server.url("/article/gone.html"), "<p>导语二。</p>"),
            ]
        )
    )
    (outcome,), _ = run_pass(make_context(settings_for(feed_server, FULL_TEXT), store))

    assert outcome.kind is OutcomeKind.OK
    assert outcome.new_count == 2
    gone = store.find_item("guid:src:gone")
    assert gone is not None
    assert (gone.summary, gone.content) == ("<p>导语二。</p>", None)
    ok = store.find_item("guid:src:ok")
    assert ok is not None
    assert ok.content is not None
    assert "恒生指数" in ok.content
    (status,) = store.list_source_status()
    assert status.last_warning is not None
    assert f"full text of {feed_server.url('/article/gone.html')}: HTTPStatusError" in (
        status.last_warning
    )
    assert status.health == "warning"


FILTERS = """\
      - block: {pattern: "广告|推广|直播预告", fields: [title]}
      - keep: {pattern: "A股|港股|债", fields: [title, content]}"""


def test_block_and_keep_drop_the_right_items_count_them_and_do_not_store_them(
    store: SqlStore, feed_server: FeedServer
) -> None:
    items = [
        ("1", "A股三大指数收涨", "https://news.example.cn/1", "<p>沪指涨1%。</p>"),
        ("2", "【广告】A股开户送好礼", "https://news.example.cn/2", "<p>开户。</p>"),
        ("3", "今日天气晴", "https://news.example.cn/3", "<p>气温回升。</p>"),
        ("4", "央行公开市场操作", "https://news.example.cn/4", "<p>债市情绪回暖。</p>"),
        ("5", "直播预告：港股策略会", "https://news.example.cn/5", "<p>港股。</p>"),
    ]
    feed_server.routes["/feed.xml"] = Route(rss(items))
    ctx = make_context(settings_for(feed_server, FILTERS), store)
    (outcome,), _ = run_pass(ctx)

    assert outcome.dropped_count == 3
    assert {i.stable_id for i in store.list_items()} == {"guid:src:1", "guid:src:4"}
    assert store.list_fetches("src")[0].dropped_count == 3
    (status,) = store.list_source_status()
    assert status.last_dropped_count == 3
    assert status.as_json()["dropped"] == 3

    # listed again in a changed feed: still dropped, still counted, never stored
    feed_server.routes["/feed.xml"] = Route(rss(items, title="测试二"))
    (again,), _ = run_pass(ctx)
    assert (again.dropped_count, again.dropped, again.unchanged_count) == (3, (), 2)
    assert store.count_items() == 2


def test_a_dropped_item_is_not_fetched_again_for_full_text(
    store: SqlStore, feed_server: FeedServer
) -> None:
    """full_text fetches the page, then keep drops the item by the article's text: the
    next pass, with the feed still listing it, does not fetch that page again."""
    feed_server.routes["/article/bank.html"] = article("cs20220125003")  # no 港股 in it
    feed_server.routes["/article/hk.html"] = article("cs20220125002")
    items = [
        ("bank", "银行", feed_server.url("/article/bank.html"), "<p>导语。</p>"),
        ("hk", "市场", feed_server.url("/article/hk.html"), "<p>导语。</p>"),
    ]
    feed_server.routes["/feed.xml"] = Route(rss(items))
    steps = FULL_TEXT + '\n      - keep: {pattern: "港股", fields: [content]}'
    ctx = make_context(settings_for(feed_server, steps), store)
    run_pass(ctx)
    feed_server.routes["/feed.xml"] = Route(rss(items, title="测试二"))
    (outcome,), _ = run_pass(ctx)

    assert outcome.dropped_count == 1
    assert [i.stable_id for i in store.list_items()] == ["guid:src:hk"]
    assert len(feed_server.requests_to("/article/bank.html")) == 1
    assert len(feed_server.requests_to("/article/hk.html")) == 1


REWRITE = """\
      - full_text: {min_chars: 0, selector: 'div#ContentBody'}
      - rewrite:
          remove: ["div.share", "p.editor", "img[src*='qrcode']"]
          replace: [{pattern: "上证报中国证券网讯 ", with: "", fields: [content]}]
          drop_query: ["utm_*", "spm", "from"]"""


def test_rewrite_removes_the_named_elements_and_a_tracking_parameter(
    store: SqlStore, feed_server: FeedServer
) -> None:
    query = "?id=7&from=mirror&utm_source=rss"
    feed_server.routes["/article/mlf.html" + query] = article("cs20220125001")
    link = feed_server.url("/article/mlf.html" + query)
    feed_server.routes["/feed.xml"] = Route(rss([("mlf", "央行MLF", link, "<p>导语。</p>")]))
    run_pass(make_context(settings_for(feed_server, REWRITE), store))

    stored = store.find_item("guid:src:mlf")
    assert stored is not None
    assert stored.content is not None
    assert stored.link == feed_server.url("/article/mlf.html") + "?id=7"
    # the page was fetched with the link as the feed gave it (rewrite runs after it here)
    (request,) = feed_server.requests_to("/article/mlf.html?id=7&from=mirror&utm_source=rss")
    assert request.status == 200
    for gone in ('class="share"', "分享到", "责任编辑", "qrcode", "上证报中国证券网讯"):
        assert gone not in stored.content, gone
    assert stored.content.count("<p>") == 6  # five paragraphs, and the one the QR code was in
    assert "中国人民银行1月25日发布公告称" in stored.content


@pytest.mark.parametrize(
    ("to", "given", "expected"),
    [
        pytest.param(
            "zh-hant", "简体中文的发展与头发", "簡體中文的發展與頭髮", id="to traditional"
        ),
        pytest.param("zh-hans", "簡體中文的發展與頭髮", "简体中文的发展与头发", id="to simplified"),
    ],
)
def test_convert_turns_simplified_into_traditional_and_back(
    store: SqlStore, feed_server: FeedServer, to: str, given: str, expected: str
) -> None:
    feed_server.routes["/feed.xml"] = Route(
        rss([("c", given, "https://news.example.cn/c", f"<p>{given}</p>")])
    )
    steps = f"      - convert: {{to: {to}}}"
    run_pass(make_context(settings_for(feed_server, steps), store))
    stored = store.find_item("guid:src:c")
    assert stored is not None
    assert (stored.title, stored.summary) == (expected, f"<p>{expected}</p>")


def test_the_bundled_full_text_sample_works_offline(tmp_path: Path) -> None:
    """config/sources.yaml's cnstock-fulltext: teasers become the project's article pages
    (file: copies through page_url), the advertisement is dropped, links lose tracking."""
    from aggregator.config.settings import load_settings

    settings = load_settings(ARTICLES.parent.parent / "sources.yaml")
    store = SqlStore(f"sqlite:///{tmp_path / 'samples.db'}")
    store.upgrade()
    try:
        (outcome,), _ = run_pass(make_context(settings, store), ["cnstock-fulltext"])
        assert (outcome.kind, outcome.new_count, outcome.dropped_count) == (OutcomeKind.OK, 3, 1)
        assert outcome.warnings == ()
        for item in store.list_items():
            assert item.link is not None
            assert "?" not in item.link
            assert item.content is not None
            assert item.content.startswith('<div class="content">')
            for gone in ("分享到", "责任编辑", "qrcode"):
                assert gone not in item.content
    finally:
        store.close()
