"""Differential test: the lxml fast path must yield exactly what the feedparser path
yields, on every feed it accepts; and it must accept the common case."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.ingest.encodings import decode_body
from aggregator.ingest.fastparse import parse_fast
from aggregator.ingest.fields import ParseRules
from aggregator.ingest.parser import (
    _as_utf8_xml,
    _drop_forbidden_refs,
    _is_utf8_as_is,
    build_item,
    parse_xml,
)
from tests.conftest import FIXTURES, ROOT

RULES = ParseRules(base_url="http://feeds.example/news/feed.xml", category_from="author")
CORPUS = sorted(
    p
    for p in [*FIXTURES.iterdir(), *(ROOT / "config" / "samples").iterdir()]
    if p.suffix in (".xml", ".rss", ".atom", ".rdf")
)
# the common case: the fast path must take these, or it is not worth having
MUST_ACCEPT = {
    "seed.rss",
    "seed.atom",
    "seed-updated.rss",
    "rss20.xml",
    "eastmoney-rss.xml",
    "cnstock-atom.atom",
    "dates.xml",
    "ids.xml",
    "gbk.xml",
    "big5.xml",
    "media.rss",
    "media.atom",
}

RSS_EDGE = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>边缘 &amp; 情况</title><link>http://feeds.example/</link>
<item><title>A &amp; B &lt;b&gt;粗&lt;/b&gt;</title><link> /rel/1.html </link>
  <description><![CDATA[<p>摘要 &amp; 更多</p>]]></description>
  <author>news@example.com (证券时报)</author><category>A股</category><category>港股</category>
  <pubDate>Tue, 25 Jan 2022 15:24:31 +0800</pubDate></item>
<item><title>  多余   空白  </title><guid isPermaLink="false">g-1</guid>
  <dc:creator>上海证券报</dc:creator><dc:date>2022-01-25T15:24:31+08:00</dc:date>
  <description>纯文本摘要</description><content:encoded>纯文本摘要</content:encoded></item>
<item><guid>http://feeds.example/permalink/3</guid><description>只有描述</description></item>
<item><title>无日期</title><link>http://a.example/4</link><source url="http://s/">中国证券报</source>
  <pubDate>garbage</pubDate></item>
</channel></rss>"""

ATOM_EDGE = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">标题 &amp;amp; 更多</title>
<link href="http://feeds.example/"/><id>urn:x</id><updated>2022-01-25T07:00:00Z</updated>
<entry><id>urn:1</id><title type="html">&lt;b&gt;粗体&lt;/b&gt; 标题</title>
  <link rel="enclosure" href="http://a/x.mp3"/><link href="rel/5.html"/>
  <updated>2022-01-25T15:24:31+08:00</updated><author><name> 第一财经 </name></author>
  <content type="html">&lt;p&gt;正文&lt;/p&gt;</content><summary>摘要</summary>
  <category term="科技"/></entry>
<entry><id>urn:2</id><title>纯文本 &lt;不是标签&gt;</title>
  <published>2022-01-24T10:00:00+08:00</published><updated>2022-01-25T10:00:00+08:00</updated>
  <content type="text">文本内容</content></entry>
</feed>"""


def both(body: bytes, rules: ParseRules = RULES) -> tuple[object, object, bool]:
    text = decode_body(body).text
    accepted = (
        parse_fast(_as_utf8_xml(text), rules.base_url, lambda raw: build_item(raw, rules))
        is not None
    )
    return (
        parse_xml(body, None, rules, allow_fast=True),
        parse_xml(body, None, rules, allow_fast=False),
        accepted,
    )


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_fast_path_matches_feedparser_on_the_corpus(path: Path) -> None:
    fast, reference, accepted = both(path.read_bytes())
    assert fast.items == reference.items  # type: ignore[attr-defined]
    assert fast.title == reference.title  # type: ignore[attr-defined]
    if path.name in MUST_ACCEPT:
        assert accepted, f"the fast path declined {path.name}"


@pytest.mark.parametrize("body", [RSS_EDGE, ATOM_EDGE], ids=["rss edge cases", "atom edge cases"])
def test_fast_path_matches_feedparser_on_edge_cases(body: str) -> None:
    fast, reference, accepted = both(body.encode())
    assert accepted
    assert fast.items == reference.items  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", [RSS_EDGE, ATOM_EDGE], ids=["rss", "atom"])
@pytest.mark.parametrize(
    "tail",
    ["\n<!-- cache 2022-01-25 -->\n", "<?cache hit?>", "\n\t \r\n"],
    ids=["comment", "processing instruction", "white space"],
)
def test_what_may_follow_the_root_element_leaves_both_paths_equal(body: str, tail: str) -> None:
    """Comments, processing instructions and white space after the root element are
    well-formed XML: the fast path takes the feed, and reads what feedparser reads."""
    fast, reference, accepted = both((body + tail).encode())
    assert accepted
    assert fast.items == reference.items  # type: ignore[attr-defined]
    assert fast.warnings == reference.warnings == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "x">]><rss version="2.0"><channel>'
        b"<title>&e;</title></channel></rss>",
        b'<rss version="2.0" xml:base="http://b/"><channel><item><link>a</link></item>'
        b"</channel></rss>",
        b'<rss version="2.0"><channel><item><title>unclosed</channel></rss>',
        b'<rss version="0.91"><channel><item><title>t</title></item></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></title></entry></feed>',
    ],
    ids=["doctype", "xml:base", "not well-formed", "rss 0.91", "atom xhtml"],
)
def test_fast_path_declines_what_it_does_not_implement(body: bytes) -> None:
    assert parse_fast(body, None, lambda raw: build_item(raw, RULES)) is None


TEXT = st.text(alphabet=st.sampled_from(list("证券时报上海 &<>'\"abcXYZ123\t\n;#")), max_size=30)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT, TEXT, st.booleans()), min_size=1, max_size=5))
def test_fast_path_matches_feedparser_on_generated_rss(
    items: list[tuple[str, str, str, bool]],
) -> None:
    body = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>t</title>'
    ]
    for index, (title, summary, author, cdata) in enumerate(items):
        description = f"<![CDATA[{summary.replace(']]>', '')}]]>" if cdata else escape(summary)
        body.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>http://a.example/{index}</link><description>{description}"
            f"</description><dc:creator>{escape(author)}</dc:creator>"
            f"<pubDate>Tue, 25 Jan 2022 15:24:{index:02d} +0800</pubDate></item>"
        )
    body.append("</channel></rss>")
    fast, reference, accepted = both("".join(body).encode())
    assert accepted
    assert fast.items == reference.items  # type: ignore[attr-defined]


def _after_declaration(body: bytes) -> bytes:
    return body[body.index(b"?>") + 2 :] if body.startswith(b"<?xml") else body


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_bytes_parsed_as_they_are_are_what_decoding_would_give(path: Path) -> None:
    """parse_xml hands a UTF-8 body to the fast path without decoding it only when
    decoding, dropping forbidden references and re-encoding would give the same bytes."""
    body = path.read_bytes()
    for content_type in (None, "application/rss+xml; charset=utf-8"):
        if _is_utf8_as_is(body, content_type):
            text, encoding, _ = decode_body(body, content_type)
            converted = _as_utf8_xml(_drop_forbidden_refs(text))
            assert encoding == "utf-8"
            assert _after_declaration(converted) == _after_declaration(body)


@pytest.mark.parametrize(
    ("body", "content_type", "as_is"),
    [
        ('<?xml version="1.0" encoding="UTF-8"?><rss/>', None, True),
        ('<?xml version="1.0"?><rss/>', "text/xml; charset=utf-8", True),
        ("<rss>上海</rss>", None, True),
        ('<?xml version="1.0" encoding="iso-8859-1"?><rss>上海</rss>', None, False),
        ('<?xml version="1.0" encoding="gb2312"?><rss/>', None, False),
        ("<rss/>", "text/xml; charset=gbk", False),
        ("<rss>&#1;</rss>", None, False),
        (' <?xml version="1.0"?><rss/>', None, False),
        ("\ufeff<rss/>", None, False),
    ],
)
def test_which_bodies_skip_decoding(body: str, content_type: str | None, as_is: bool) -> None:
    assert _is_utf8_as_is(body.encode("utf-8"), content_type) is as_is


def test_invalid_utf8_labelled_utf8_still_parses_the_long_way() -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>'
        "<title>上海证券报</title><link>http://a.example/1</link></item></channel></rss>"
    ).encode("gb18030")
    assert _is_utf8_as_is(body, None)
    feed = parse_xml(body, None, RULES)
    assert [item.title for item in feed.items] == ["上海证券报"]


@pytest.mark.parametrize("character", ["\x7f", "\ufdd0", "\ufdef"])
def test_characters_xml_allows_but_we_do_not_are_removed_on_the_as_is_path(
    character: str,
) -> None:
    """Texts of a document read as it is skip the forbidden-character filter only when
    its bytes hold none of what lxml lets through and xml_safe removes."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>'
        f"<title>上海{character}证券报</title><link>http://a.example/1</link>"
        f"<description>正文{character}</description><author>上海{character}证券报</author>"
        "</item></channel></rss>"
    ).encode()
    assert _is_utf8_as_is(body, None)
    item = parse_xml(body, None, RULES).items[0]
    assert (item.title, item.summary, item.author) == ("上海证券报", "正文", "上海证券报")
    assert item == parse_xml(body, None, RULES, allow_fast=False).items[0]


@pytest.mark.parametrize(
    "author",
    [
        "news@example.com (证券时报)",
        "x@y.co (名)",
        "a@b.c (名)",  # a one-letter top-level domain: feedparser keeps the whole text
        "a.b@c-d.example.org (名 字)",
        "news@[127.0.0.1] (名)",
    ],
)
def test_rss_author_with_an_address_matches_feedparser(author: str) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>'
        f"<title>t</title><link>http://a.example/1</link><author>{escape(author)}</author>"
        "</item></channel></rss>"
    ).encode()
    fast, reference, _ = both(body)
    assert fast.items == reference.items  # type: ignore[attr-defined]
