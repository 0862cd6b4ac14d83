"""The HTML pages as rendered from plain values. The served pages are in
tests/serve/test_pages.py and, in a real browser, tests/serve/test_browser.py."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.model import CategoryInfo, StoredItem
from aggregator.publish.pages import (
    Section,
    outlet_names,
    page_item,
    render_category_page,
    render_home,
    render_item_page,
)
from aggregator.publish.render import ChannelView, ItemView

ROOT = "http://news.example"
CATEGORIES = [
    CategoryInfo("shanghaizhengquanbao", "上海证券报新闻", "", "上海证券报", "config", 3, -1),
    CategoryInfo("misc", "其他", "", None, "config", 3, -1),
]


def stored(
    item_id: int,
    author: str | None = None,
    slugs: tuple[str, ...] = ("shanghaizhengquanbao",),
    offset_minutes: int = 480,
) -> StoredItem:
    published = datetime(2022, 1, 25, 7, 24, tzinfo=UTC) - timedelta(hours=item_id)
    return StoredItem(
        item_id=item_id,
        stable_id=f"NW{item_id}",
        seq=item_id,
        title=f"标题{item_id}",
        link=f"http://origin.example/{item_id}",
        guid=None,
        summary="<p>正文</p>",
        content=None,
        author=author,
        published_at=published,
        published_offset_minutes=offset_minutes,
        first_seen_at=published,
        updated_at=published,
        update_count=0,
        source_id="src",
        category_slugs=slugs,
    )


def channel(slug: str) -> ChannelView:
    return ChannelView(
        key=slug,
        title="上海证券报新闻",
        description="",
        self_url=f"{ROOT}/category/{slug}.html",
        html_url=f"{ROOT}/category/{slug}.html",
        feed_url_base=f"{ROOT}/feeds/{slug}",
        site_url=ROOT,
        language="zh-cn",
        ttl_minutes=30,
        updated=datetime(2022, 1, 25, tzinfo=UTC),
    )


def alternates(html: str) -> list[str]:
    """The href of every element announcing a feed (rel=alternate), in <head> or not."""
    tags = re.findall(r"<(?:link|a)\b[^>]*>", html)
    return [
        re.search(r'href="([^"]*)"', tag)[1]
        for tag in tags
        if re.search(r'rel="[^"]*\balternate\b', tag)
    ]


@pytest.mark.parametrize(
    ("offset_minutes", "shown", "iso"),
    [
        (480, "2022-01-25 15:24 UTC+08:00", "2022-01-25T15:24:00+08:00"),
        (0, "2022-01-25 07:24 UTC+00:00", "2022-01-25T07:24:00+00:00"),
        (-300, "2022-01-25 02:24 UTC-05:00", "2022-01-25T02:24:00-05:00"),
        (330, "2022-01-25 12:54 UTC+05:30", "2022-01-25T12:54:00+05:30"),
    ],
    ids=["shanghai", "utc", "new-york", "half-hour"],
)
def test_times_carry_their_offset(offset_minutes: int, shown: str, iso: str) -> None:
    item = stored(0, "上海证券报", offset_minutes=offset_minutes)
    assert page_item(item).local_time == shown
    time_tag = f'<time datetime="{iso}">{shown}</time>'
    views = [ItemView(item, (), None)]
    section = Section("s", "t", (page_item(item),))
    pages = {
        "home": render_home([section], ROOT, latest=[page_item(item)]),
        "category": render_category_page(channel("shanghaizhengquanbao"), views, 1, False, ROOT),
        "item": render_item_page(item, [], ROOT),
    }
    for name, page in pages.items():
        assert time_tag in page.decode(), name


def test_an_item_without_author_shows_the_outlet_its_category_is_named_after() -> None:
    """A JSON API source files items by a field (mediaName) and gives no author."""
    outlets = outlet_names(CATEGORIES)
    assert outlets == {"shanghaizhengquanbao": "上海证券报"}
    assert page_item(stored(1), outlets).outlet == "上海证券报"
    assert page_item(stored(1, author="证券时报"), outlets).outlet == "证券时报"
    assert page_item(stored(1, slugs=("misc",)), outlets).outlet is None
    assert page_item(stored(1, slugs=("misc", "shanghaizhengquanbao")), outlets).outlet == (
        "上海证券报"
    )
    views = [ItemView(stored(1), (), None)]
    category = render_category_page(
        channel("shanghaizhengquanbao"), views, 1, False, ROOT, outlets=outlets
    ).decode()
    assert "UTC+08:00</time> · 上海证券报</span>" in category
    item = render_item_page(stored(1), [], ROOT, outlets=outlets).decode()
    assert "UTC+08:00</time> · 上海证券报" in item
    home = render_home([], ROOT, latest=[page_item(stored(1), outlets)]).decode()
    assert "UTC+08:00</time> · 上海证券报</span>" in home


def test_home_opens_with_the_latest_items_then_each_outlet() -> None:
    latest = [page_item(stored(i, "上海证券报")) for i in (1, 2)]
    sections = [Section("shanghaizhengquanbao", "上海证券报新闻", tuple(latest))]
    html = render_home(sections, ROOT, latest=latest).decode()
    headings = re.findall(r"<h2>(?:<a [^>]*>)?([^<]*)", html)
    assert headings == ["最新", "上海证券报新闻"]
    assert html.index("标题1") < html.index("<h2><a")
    empty = render_home([], ROOT).decode()
    assert "还没有内容" in empty
    assert "最新" not in empty


def test_each_feed_is_announced_once_and_only_in_head() -> None:
    """Feed readers and browser extensions collect every rel=alternate link of a page: a
    feed announced in <head> and again by a visible link was offered twice, and the
    home page offered every category's feeds as alternates of itself."""
    item = stored(1, "上海证券报")
    sections = [Section("shanghaizhengquanbao", "上海证券报新闻", (page_item(item),))]
    views = [ItemView(item, (), None)]
    pages = {
        "home": render_home(sections, ROOT, latest=[page_item(item)]),
        "category": render_category_page(channel("shanghaizhengquanbao"), views, 1, False, ROOT),
        "item": render_item_page(item, [("shanghaizhengquanbao", "上海证券报新闻")], ROOT),
    }
    for name, page in pages.items():
        html = page.decode()
        announced = alternates(html)
        assert announced, name
        assert Counter(announced).most_common(1)[0][1] == 1, (name, announced)
        head = html[: html.index("</head>")]
        assert all(f'href="{href}"' in head for href in announced), name
    # the visible subscribe links are still there
    home = pages["home"].decode()
    assert f'<a href="{ROOT}/feeds/shanghaizhengquanbao.atom" type="application/atom+xml">' in (
        home
    )


def test_an_item_page_offers_its_categories_feeds() -> None:
    item = stored(1, "上海证券报", slugs=("shanghaizhengquanbao", "misc"))
    html = render_item_page(
        item, [("shanghaizhengquanbao", "上海证券报新闻"), ("misc", "其他")], ROOT
    ).decode()
    assert alternates(html) == [
        f"{ROOT}/feeds/{slug}.{ext}"
        for slug in ("shanghaizhengquanbao", "misc")
        for ext in ("xml", "atom", "json")
    ]
    assert '<link rel="alternate" type="application/feed+json" title="其他" ' in html


def test_previous_and_next_link_the_items_beside_it() -> None:
    newer, item, older = (stored(i) for i in (1, 2, 3))  # newest first, as the page lists
    html = render_item_page(item, [], ROOT, newer=newer, older=older).decode()
    assert f'<a href="{ROOT}/item/1.html" rel="prev">← 较新：标题1</a>' in html
    assert f'<a href="{ROOT}/item/3.html" rel="next">较早：标题3 →</a>' in html
    alone = render_item_page(stored(9), [], ROOT).decode()
    assert 'rel="prev"' not in alone
    assert 'rel="next"' not in alone


@pytest.mark.parametrize(
    ("title", "link", "shown"),
    [
        pytest.param("标题", "http://origin.example/1", "标题", id="its own title"),
        pytest.param("", "http://origin.example/1", "http://origin.example/1", id="its link"),
        pytest.param("", None, "#1", id="its number"),
    ],
)
def test_an_untitled_item_is_never_an_empty_heading_or_link(
    title: str, link: str | None, shown: str
) -> None:
    """Untitled items keep an empty title in the feeds (issue 13); a page shows their link
    instead, so no <h1> and no list entry is empty."""
    item = replace(stored(1), title=title, link=link)
    page = render_item_page(item, [], ROOT).decode()
    assert f"<h1>{shown}</h1>" in page
    assert page_item(item).title == shown
