"""HTML list pages as sources (``type: html``): the pure reader on a page written here,
config errors for bad selectors, and a list page served over HTTP on 127.0.0.1 whose
items' bodies come from their linked pages through ``full_text``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config.settings import parse_settings
from aggregator.errors import ConfigError, ParseError
from aggregator.ingest.fields import ParseRules
from aggregator.ingest.htmllist import parse_html_list
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

ARTICLES = Path(__file__).resolve().parents[2] / "config" / "samples" / "articles"
HTML = "text/html; charset=utf-8"
SHANGHAI = ZoneInfo("Asia/Shanghai")

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>要闻 &amp; 快讯</title></head>
<body><div id="list">
<div class="row"><a class="t" href="/article/cs20220125001.html"> 央行<b>开展</b>MLF操作 </a>
  <em>2022-01-25 09:20</em><p>导语一</p></div>
<div class="row"><a class="t" href="https://news.example.cn/2.html">港股高开</a><em>昨天</em></div>
<div class="row"><span>广告</span></div>
<div class="row"><a class="t" href="javascript:void(0)">脚本链接</a></div>
</div></body></html>"""

CSS = {"items": "#list div.row", "title": "a.t", "link": "a.t@href", "date": "em",
       "summary": "p", "date_format": "%Y-%m-%d %H:%M"}  # fmt: skip
XPATH = {"items": "xpath://div[@id='list']/div", "title": "xpath:./a", "link":
         "xpath:./a/@href", "date": "xpath:./em/text()", "summary": None,
         "date_format": "%Y-%m-%d %H:%M"}  # fmt: skip


@pytest.mark.parametrize("selectors", [CSS, XPATH], ids=["css", "xpath"])
def test_a_list_page_reads_title_link_date_and_summary(selectors: dict[str, str]) -> None:
    rules = ParseRules(
        kind="html",
        base_url="http://list.example/news/index.html",
        source_tz=SHANGHAI,
        html=selectors,
        date_format=selectors["date_format"],
    )
    feed = parse_html_list(PAGE.encode(), HTML, rules)
    assert feed.title == "要闻 & 快讯"
    assert [(i.title, i.link) for i in feed.items] == [
        ("央行开展MLF操作", "http://list.example/article/cs20220125001.html"),  # resolved
        ("港股高开", "https://news.example.cn/2.html"),
    ]
    first, second = feed.items
    assert first.published_at == datetime(2022, 1, 25, 1, 20, tzinfo=UTC)
    assert first.published_offset_minutes == 480
    assert second.published_at is None  # "昨天": the first-seen time, later
    assert first.summary == ("导语一" if selectors["summary"] else None)
    assert feed.warnings == ("2 list entries without a title or link skipped",)


def test_a_selector_that_matches_nothing_is_a_parse_error() -> None:
    rules = ParseRules(kind="html", html={**CSS, "items": "ul.gone li"})
    with pytest.raises(ParseError, match=r"html.items 'ul.gone li' matched nothing"):
        parse_html_list(PAGE.encode(), HTML, rules)


@pytest.mark.parametrize(
    ("key", "selector", "message"),
    [
        ("items", "ul..x", "bad CSS selector 'ul..x'"),
        ("link", "xpath://a[", "bad XPath '//a['"),
    ],
)
def test_a_bad_selector_is_one_config_error_with_file_line_and_key(
    key: str, selector: str, message: str
) -> None:
    text = f"""categories:
  news: {{title: 新闻}}
sources:
  - id: list
    url: http://list.example/
    type: html
    category: news
    html:
      items: "div.row"
      title: "a"
      {key}: "{selector}"
"""
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, "sources.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("sources.yaml:11:")
    assert f"html.{key}" in problem
    assert message in problem


def test_html_needs_type_html_and_type_html_needs_html() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            "categories: {news: {title: 新闻}}\nsources:\n"
            "  - {id: a, url: 'http://a.example/', type: html, category: news}\n"
            "  - {id: b, url: 'http://b.example/', category: news, html: {items: li, title: a}}\n",
            "s.yaml",
        )
    text = "\n".join(caught.value.problems)
    assert "type html needs html" in text
    assert "html only applies to type: html" in text


def test_an_html_source_over_http_takes_each_body_from_its_linked_page(
    store: SqlStore, feed_server: FeedServer
) -> None:
    for name in ("cs20220125001", "cs20220125002"):
        feed_server.routes[f"/article/{name}.html"] = Route(
            (ARTICLES / f"{name}.html").read_bytes(), content_type=HTML
        )
    page = PAGE.replace("https://news.example.cn/2.html", "/article/cs20220125002.html")
    feed_server.routes["/list.html"] = Route(page.encode(), content_type=HTML)
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories:
  news: {{title: 新闻}}
sources:
  - id: list
    url: {feed_server.url("/list.html")}
    type: html
    timezone: Asia/Shanghai
    category: news
    html:
      items: "#list div.row"
      title: a.t
      link: a.t@href
      date: em
      date_format: "%Y-%m-%d %H:%M"
      summary: p
    process:
      - full_text: {{min_chars: 100, selector: 'div#ContentBody'}}
""")
    before = datetime.now(UTC)
    ((outcome,), _) = run_pass(make_context(settings, store))
    assert outcome.error is None, outcome
    assert outcome.new_count == 2
    items = {i.link: i for i in store.list_items(limit=10)}
    first = items[feed_server.url("/article/cs20220125001.html")]
    second = items[feed_server.url("/article/cs20220125002.html")]
    assert first.published_at == datetime(2022, 1, 25, 1, 20, tzinfo=UTC)
    assert second.published_at >= before  # no readable date: first seen
    for item in (first, second):
        assert item.content is not None
        assert len(item.content) > 300  # the article's page, not the list's teaser
    assert "1500亿元" in (first.content or "")
