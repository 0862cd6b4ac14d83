"""Fuzzing the parse path with mutated feeds (issue #4).

The fixture feeds (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed 1.0/1.1, odd encodings) are
cut, flipped, spliced with hostile bytes and given other encoding declarations.
``parse_body`` must return a ``ParsedFeed`` or raise ``ParseError``, nothing else; and
whatever it returns, once through identity and ``plan_items``, must render to
well-formed RSS, Atom, JSON Feed, HTML and Jekyll documents. A bad value in one field
(a date, a link, an author) must cost that value, never the feed.

Examples are derandomized, so CI sees the same ones every run.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any

import lxml.html
import yaml
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.errors import ParseError
from aggregator.ingest.decide import CategoryRule, plan_items
from aggregator.ingest.fields import ParseRules
from aggregator.ingest.identity import identify
from aggregator.ingest.parser import parse_body
from aggregator.model import CategoryRef, ParsedFeed, SourceInfo, StoredItem
from aggregator.publish.formats import RENDERERS
from aggregator.publish.pages import render_item_page
from aggregator.publish.render import (
    ChannelView,
    ItemView,
    latest_update,
    render_jekyll_post,
)
from aggregator.slug import CategoryRegistry
from tests.conftest import FIXTURES
from tests.feedcheck import CHECKS, STRICT

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CORPUS = {
    p.name: p.read_bytes()
    for p in sorted(FIXTURES.iterdir())
    if p.suffix in (".xml", ".rss", ".atom", ".rdf", ".json") and ".expected." not in p.name
}
NOW = datetime(2022, 1, 26, 12, 0, tzinfo=UTC)
SITE = "http://news.example"
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
NASTY = (
    b"<", b"&", b">", b'"', b"]]>", b"<![CDATA[", b"&#xD800;", b"&#0;", b"&#x1;", b"&#xFFFE;",
    b"&#1114112;", b"&amp;#xD800;", b"&amp;#x1;", b"\x00", b"\x01", b"\x1b", b"\x7f",
    b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xef\xbf\xbe",
    b"<!DOCTYPE rss [<!ENTITY x 'y'>]>", b"&x;", b"&lt;script&gt;alert(1)&lt;/script&gt;",
    b"<script>alert(1)</script>", b"</item>", b"<item>", b"</entry>", b"<entry>",
    b' xml:base="javascript:alert(1)//"', b"javascript:", b'"\\ud800"', b'"\\u0000"',
    b"\\udfff", b"{", b"}", b"[", b"]", b",", b"0001-01-01T00:00:00+01:00",
    b"9999-12-31T23:59:59-01:00", b"\r\n", b"\t",
)  # fmt: skip
ENCODINGS = (
    b"utf-8", b"utf-16", b"utf-16le", b"utf-32", b"gb2312", b"gbk", b"big5", b"iso-8859-1",
    b"shift_jis", b"cp500", b"koi8-r", b"utf-7", b"x-no-such-charset", b"",
)  # fmt: skip
CONTENT_TYPES = (
    None,
    "application/rss+xml",
    "application/xml; charset=gb2312",
    "text/xml; charset=utf-16",
    "application/feed+json",
    "text/html; charset=nonsense",
)
_DECLARED = re.compile(rb"encoding\s*=\s*[\"'][^\"']*[\"']")


@st.composite
def mutated_feeds(draw: st.DrawFn) -> bytes:
    """A fixture feed after one to four byte-level mutations."""
    data = bytearray(CORPUS[draw(st.sampled_from(sorted(CORPUS)), label="fixture")])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate", "encoding"])
        )
        size = len(data)
        at = draw(st.integers(0, size))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and size:
            data[min(at, size - 1)] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : draw(st.integers(at, min(size, at + 200)))]
        elif kind == "duplicate":
            data[at:at] = data[at : draw(st.integers(at, min(size, at + 200)))]
        elif kind == "encoding":
            name = draw(st.sampled_from(ENCODINGS))
            declaration = b'encoding="' + name + b'"'
            if _DECLARED.search(data):
                data = bytearray(_DECLARED.sub(declaration, bytes(data), count=1))
            else:
                data[0:0] = b'<?xml version="1.0" ' + declaration + b"?>"
    return bytes(data)


RULES = st.builds(
    ParseRules,
    base_url=st.sampled_from([None, "http://feeds.example/news/feed.xml"]),
    category_from=st.sampled_from([None, "author", "tags", "source", "title_detail.type"]),
)


def parse(body: bytes, content_type: str | None, rules: ParseRules) -> ParsedFeed | None:
    """The feed, or None for a ParseError; any other exception fails the test."""
    try:
        feed = parse_body(body, content_type, rules)
    except ParseError:
        event("ParseError")
        return None
    assert isinstance(feed, ParsedFeed)
    event("parsed", f"{feed.version}, {'some' if feed.items else 'no'} items")
    return feed


# --------------------------------------------------------------------------- rendering


def item_views(feed: ParsedFeed, rules: ParseRules) -> list[ItemView]:
    """The feed's items as the store would hand them back after this fetch."""
    pairs, _ = identify(feed.items, "fuzz")
    rule = CategoryRule(fixed=CategoryRef("fuzz", "模糊"), from_field=rules.category_from)
    plan = plan_items(pairs, {}, rule, CategoryRegistry(), NOW, UTC)
    source = SourceInfo("fuzz", feed.title or "模糊", "http://feeds.example/news/feed.xml")
    items = [
        StoredItem(
            item_id=n,
            stable_id=intent.stable_id,
            seq=n,
            title=intent.title,
            link=intent.link,
            guid=intent.guid,
            summary=intent.summary,
            content=intent.content,
            author=intent.author,
            published_at=intent.published_at,
            published_offset_minutes=intent.published_offset_minutes,
            first_seen_at=NOW,
            updated_at=NOW,
            update_count=0,
            source_id="fuzz",
            category_slugs=tuple(c.slug for c in intent.categories),
            first_seq=n,
        )
        for n, intent in enumerate(plan.intents, start=1)
    ]
    return [
        ItemView(item, tuple((c.slug, c.title) for c in intent.categories), source)
        for item, intent in zip(items, plan.intents, strict=True)
    ]


def strings(value: object) -> list[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for inner in value.values() for s in strings(inner))]
    if isinstance(value, list):
        return [s for inner in value for s in strings(inner)]
    return []


def render_problems(feed: ParsedFeed, rules: ParseRules) -> list[str]:
    """Render every format from the parsed feed; what is not well-formed or valid."""
    views = item_views(feed, rules)
    channel = ChannelView(
        key="fuzz",
        title=feed.title or "模糊",
        description="模糊测试",
        self_url=f"{SITE}/feeds/fuzz.xml",
        html_url=f"{SITE}/category/fuzz.html",
        feed_url_base=f"{SITE}/feeds/fuzz",
        site_url=SITE,
        language="zh-cn",
        ttl_minutes=30,
        updated=latest_update(views, NOW),
    )
    problems: list[str] = []
    for ext in ("xml", "atom", "json"):
        body = RENDERERS[ext].render(channel, views)
        problems += [f"{ext}: {p}" for p in CHECKS[ext](body)]  # strict parse, spec rules
        if ext == "json":
            text = "".join(strings(json.loads(body)))
            problems += [f"json: forbidden {c!r}" for c in XML_FORBIDDEN.findall(text)]
        else:
            etree.fromstring(body, STRICT)
    pages = [RENDERERS["html"].render(channel, views)]
    pages += [render_item_page(view.item, view.categories, SITE) for view in views]
    for page in pages:
        text = page.decode("utf-8")
        problems += [f"html: forbidden {c!r}" for c in XML_FORBIDDEN.findall(text)]
        lxml.html.document_fromstring(page)
    for view in views:
        post = render_jekyll_post(view, SITE).decode("utf-8")
        problems += [f"jekyll: forbidden {c!r}" for c in XML_FORBIDDEN.findall(post)]
        front = yaml.safe_load(post.split("---\n", 2)[1])
        if html.unescape(front["title"]) != view.item.title:  # escaped for the layouts
            problems.append(f"jekyll: title {front['title']!r} != {view.item.title!r}")
    return problems


# --------------------------------------------------------------------------- properties


@FUZZ
@given(mutated_feeds(), st.sampled_from(CONTENT_TYPES), RULES)
@example(b'<rss version="2.0"><channel><item><title>&#xD800;</title></item></channel></rss>', None,
         ParseRules())  # fmt: skip
@example(CORPUS["rss20.xml"][:700], "application/rss+xml", ParseRules(category_from="author"))
def test_a_mutated_feed_parses_or_raises_parse_error(
    body: bytes, content_type: str | None, rules: ParseRules
) -> None:
    parse(body, content_type, rules)


@FUZZ
@given(mutated_feeds(), st.sampled_from(CONTENT_TYPES), RULES)
@example(
    b'<rss version="2.0"><channel><item><title>&amp;lt;img src=x onerror=alert(1)&amp;gt;'
    b"</title><link>http://a.example/1&#x1;</link><guid>g&#xDFFF;</guid>"
    b"<author>&#xFFFE;</author></item></channel></rss>",
    None,
    ParseRules(category_from="author"),
)
@example(
    b'<rss version="2.0"><channel><item><title>t</title><link>http://a.example/1</link>'
    b'<description>&lt;p title="&amp;#x1b;"&gt;x&amp;#x1;&lt;/p&gt;</description>'
    b"</item></channel></rss>",
    None,
    ParseRules(),
)
def test_whatever_parses_renders_well_formed(
    body: bytes, content_type: str | None, rules: ParseRules
) -> None:
    feed = parse(body, content_type, rules)
    if feed is not None:
        assert render_problems(feed, rules) == []


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
        | st.sampled_from(["javascript:alert(1)", "<script>alert(1)</script>", "\ud800", ""])
    )
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


ITEM_FIELDS = (
    "id", "url", "title", "summary", "content_html", "content_text", "date_published",
    "date_modified", "author", "authors", "tags",
)  # fmt: skip


@FUZZ
@given(
    st.sampled_from(["jsonfeed10.json", "jsonfeed11.json"]),
    st.lists(
        st.tuples(st.integers(0, 10), st.sampled_from(ITEM_FIELDS), json_values()), max_size=4
    ),
)
@example("jsonfeed11.json", [(0, "date_published", 1e300), (1, "url", "javascript:alert(1)")])
def test_a_bad_json_feed_value_costs_that_value_not_the_feed(
    name: str, changes: list[tuple[int, str, Any]]
) -> None:
    """JSON Feed with any JSON value (surrogates, numbers, lists, null) in an item field:
    a value of the right type is read, or dropped, and the other items stay."""
    document = json.loads(CORPUS[name])
    items = document["items"]
    for index, field, value in changes:
        items[index % len(items)][field] = value
    body = json.dumps(document).encode()
    rules = ParseRules(category_from="author")
    well_typed = all(
        value is None
        or isinstance(value, str)
        or (field.startswith("date_") and type(value) in (int, float))
        for _, field, value in changes
    )
    feed = parse(body, None, rules)
    if well_typed:
        assert feed is not None
        assert len(feed.items) == len(items)
    if feed is not None:
        assert render_problems(feed, rules) == []


DATES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S +1400")),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday"]),
    st.text(max_size=30),
)


@FUZZ
@given(st.sampled_from(["rss20.xml", "atom10.xml", "dates.xml", "seed.rss"]), DATES)
@example("atom10.xml", "0001-01-01T00:00:00+01:00")
@example("rss20.xml", "9999-12-31T23:59:59-01:00")
def test_a_bad_date_costs_the_date_not_the_feed(name: str, date: str) -> None:
    """Any text in every date element: the feed still parses with every item."""
    assume(not XML_FORBIDDEN.search(date))
    original = parse(CORPUS[name], None, ParseRules())
    assert original is not None
    escaped = date.replace("&", "&amp;").replace("<", "&lt;").encode()
    body = re.sub(
        rb"(<(pubDate|published|updated|dc:date)>)[^<]*(</\2>)",
        lambda m: m.group(1) + escaped + m.group(3),
        CORPUS[name],
    )
    feed = parse(body, None, ParseRules())
    assert feed is not None
    assert len(feed.items) == len(original.items)
    assert render_problems(feed, ParseRules()) == []
