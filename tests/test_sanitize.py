"""Sanitizing untrusted HTML (sanitize.py): what survives, and forbidden characters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.sanitize import (
    _WITHOUT_URLS,
    _is_paragraphs_only,
    _is_plain_markup,
    _nests_plainly,
    sanitize_html,
)
from aggregator.text import xml_safe


def test_scripts_and_handlers_go_and_relative_links_resolve() -> None:
    html = '<p onclick="x()">a <a href="/b.html">b</a><script>alert(1)</script></p>'
    assert sanitize_html(html, "http://news.example/a/1.html") == (
        '<p>a <a href="http://news.example/b.html" rel="noopener noreferrer">b</a></p>'
    )


def test_a_lone_surrogate_is_dropped_not_an_error() -> None:
    """nh3 takes UTF-8 only: text with a lone surrogate is cleaned without it."""
    assert sanitize_html("<p>a\ud800b</p>") == "<p>ab</p>"


def test_characters_xml_forbids_never_come_out() -> None:
    assert sanitize_html("<p>a\x01b&#1;c\ufffe</p>") == "<p>abc</p>"


# --------------------------------------------------------------------------- plain markup
# sanitize_html returns markup it recognises as plain (_is_plain_markup) without running
# nh3; these hold that shortcut to what nh3 itself gives back.

_TOKENS = (
    *(f"<{name}>" for name in ("p", "b", "i", "em", "strong", "span", "sub", "sup", "br")),
    *(f"</{name}>" for name in ("p", "b", "i", "em", "strong", "span", "sub", "sup")),
    '<p class="em_media">',
    '<span class="a b">',
    '<br class="x">',
    '<p class="a  b">',
    '<p class="">',
    "<P>",
    "<br/>",
    "</br>",
    "<div>",
    "</div>",
    '<a href="/x">',
    "</a>",
    "<script>",
    "<!-- c -->",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&nbsp;",
    "&#20013;",
    "&",
    ">",
    "<",
    '"',
    "'",
    "=",
)
_TEXT = st.text(
    alphabet=st.sampled_from(
        list("上海证券报 新闻ab1（）“”、。")
        + list("\t\n\r\x00\x01\x0c\x7f\x85\xa0\u3000\u200b\ufdd0\ufffe\ud800")
    ),
    max_size=6,
)
_FRAGMENTS = st.lists(st.one_of(st.sampled_from(_TOKENS), _TEXT), max_size=14).map("".join)


def _nh3_reference(fragment: str) -> str:
    """What sanitize_html returned before the shortcut (no base URL, no URL attribute)."""
    try:
        cleaned = _WITHOUT_URLS.clean(fragment)
    except UnicodeEncodeError:
        cleaned = _WITHOUT_URLS.clean(xml_safe(fragment))
    return xml_safe(cleaned)


@settings(max_examples=3000, deadline=None)
@given(_FRAGMENTS)
def test_plain_markup_is_exactly_what_nh3_gives_back(fragment: str) -> None:
    if _is_plain_markup(fragment):
        assert _WITHOUT_URLS.clean(fragment) == fragment
    assert sanitize_html(fragment) == _nh3_reference(fragment)


# Paragraph-shaped fragments, where the counting shortcut (_is_paragraphs_only) decides:
# bodies of <p> paragraphs, with brackets, other tags and text between paragraphs mixed in.
_PARAGRAPHISH = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("<p>", "<p>", "<p>", '<p class="em_media">', '<p class="a b">'),
                *('<p class="">', '<p class="a">>', '<p class="', "<pre>", "<p x>"),
                *("", "</p>", "<b>", "<p><p>"),
            ]
        ),
        st.lists(st.sampled_from([*"<>/pb新闻 &", "&amp;", "\xa0"]), max_size=5).map("".join),
        st.sampled_from(("</p>", "</p>", "</p>", "", "<p>", "</b>", "</p></p>")),
        st.sampled_from(("", "", "", "\n", "x")),
    ),
    max_size=6,
).map(lambda paragraphs: "".join("".join(parts) for parts in paragraphs))


@settings(max_examples=3000, deadline=None)
@given(_PARAGRAPHISH)
def test_the_paragraph_count_admits_only_what_the_walk_admits(fragment: str) -> None:
    if _is_paragraphs_only(fragment):
        assert _nests_plainly(fragment)
        if _is_plain_markup(fragment):
            assert _WITHOUT_URLS.clean(fragment) == fragment
    assert sanitize_html(fragment) == _nh3_reference(fragment)


@pytest.mark.parametrize(
    ("fragment", "counted"),
    [
        ("<p>一</p>", True),
        ("<p></p>", True),
        ("<p>一</p><p>二</p><p>三</p>", True),
        ("<p>一</p>\n<p>二</p>", False),  # text between paragraphs: walked
        ('<p>一</p><p class="em_media">二</p>', True),
        ('<p class="a b">一</p>', True),
        ('<p class="">一</p>', False),
        ("<pre>一</p>", False),
        ('<p class="a">一</p><p class="b>二</p>', False),
        ("<p>a<p>b</p></p>", False),
        ("<p>a</p></p><p>", False),
        ("<p>a > b</p>", False),
        ("<p>a</p>b<p>c</p>", False),
    ],
)
def test_the_paragraph_count(fragment: str, counted: bool) -> None:
    assert _is_paragraphs_only(fragment) is counted


@pytest.mark.parametrize(
    "fragment",
    [
        "<p>1月25日下午，2022上海网络安全产业创新推进会举行。</p>"
        '<p class="em_media">（文章来源：上海证券报）</p>',
        "<p>“安全即服务”&amp;新模式<br>第二行</p>\n<p>　　<b>粗</b><em>斜</em></p>",
        "纯文本，没有标签",
        "",
    ],
)
def test_ordinary_article_markup_takes_the_shortcut(fragment: str) -> None:
    assert _is_plain_markup(fragment)
    assert sanitize_html(fragment) == fragment == _nh3_reference(fragment)


@pytest.mark.parametrize(
    "fragment",
    [
        "<p>a<p>b</p></p>",  # the parser closes the first paragraph
        "<b>a<i>b</b></i>",  # misnested
        "<p>open",  # closed by the parser
        "<p>a&quot;b</p>",  # comes back as a bare quote
        "<p>a\xa0b</p>",  # comes back as &nbsp;
        "<p>a > b</p>",  # comes back as &gt;
        '<p onclick="x()">a</p>',
        "<div>a</div>",
    ],
)
def test_markup_nh3_would_change_does_not(fragment: str) -> None:
    assert not _is_plain_markup(fragment)
    assert sanitize_html(fragment) == _nh3_reference(fragment)
