"""Stable ids: the fallback chain, table-driven."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.ingest.identity import IdRule, _parse_infocode, find_infocode, identify, stable_id
from aggregator.model import ParsedItem

SEED_LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201252261008680"

CASES = [
    ("infoCode in query", ParsedItem("t", link=SEED_LINK, guid="x"), "NW202201252261008680"),
    (
        "infoCode key in any case",
        ParsedItem("t", link="http://a/b?INFOCODE=NW202201252261008680"),
        "NW202201252261008680",
    ),
    (
        "infoCode in path",
        ParsedItem("t", link="http://example.com/news/NW202201252261009999.html"),
        "NW202201252261009999",
    ),
    (
        "infoCode in guid beats plain link",
        ParsedItem("t", link="http://a/1", guid=SEED_LINK),
        "NW202201252261008680",
    ),
    (
        "bare infoCode guid (JSON API id)",
        ParsedItem("t", guid="NW202201252261008680"),
        "NW202201252261008680",
    ),
    (
        "URL guid is global",
        ParsedItem("t", link="http://a/1", guid="http://a/g/1"),
        "guid:http://a/g/1",
    ),
    ("urn guid is global", ParsedItem("t", guid="urn:uuid:1"), "guid:urn:uuid:1"),
    ("plain guid is scoped by source", ParsedItem("t", guid="12345"), "guid:src:12345"),
    (
        "link when no guid",
        ParsedItem("t", link="HTTP://Example.COM/a?b=1#frag"),
        "link:http://example.com/a?b=1",
    ),
    ("hash when neither", ParsedItem("标题", summary="摘要"), None),
    (
        "too-short code is not an infoCode",
        ParsedItem("t", link="http://a/NW2022.html"),
        "link:http://a/NW2022.html",
    ),
]


@pytest.mark.parametrize(("item", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_stable_id_chain(item: ParsedItem, expected: str | None) -> None:
    got = stable_id(item, "src")
    if expected is None:
        assert re.fullmatch(r"hash:[0-9a-f]{32}", got)
    else:
        assert got == expected


def test_configured_regex_comes_first() -> None:
    rule = IdRule(regex=re.compile(r"/a/(\d+)"))
    assert stable_id(ParsedItem("t", link="http://x/a/42", guid=SEED_LINK), "s", rule) == "42"
    # no match: the default chain
    assert stable_id(ParsedItem("t", guid=SEED_LINK), "s", rule) == "NW202201252261008680"


def test_chain_can_start_later() -> None:
    item = ParsedItem("t", link=SEED_LINK, guid="http://g/1")
    assert stable_id(item, "s", IdRule(first="guid")) == "guid:http://g/1"
    assert stable_id(item, "s", IdRule(first="link")).startswith("link:")


def test_repeated_ids_in_one_feed_keep_the_first() -> None:
    items = [
        ParsedItem("first", guid="dup-1"),
        ParsedItem("second", guid="dup-1"),
        ParsedItem("other", guid="dup-2"),
    ]
    pairs, dropped = identify(items, "s")
    assert [item.title for _, item in pairs] == ["first", "other"]
    assert dropped == 1


def test_long_ids_are_bounded_and_distinct() -> None:
    a = stable_id(ParsedItem("t", link="http://a/" + "x" * 400), "s")
    b = stable_id(ParsedItem("t", link="http://a/" + "x" * 399 + "y"), "s")
    assert len(a) <= 255
    assert len(b) <= 255
    assert a != b


@given(st.text(), st.text(), st.one_of(st.none(), st.text()))
def test_stable_id_is_deterministic_and_bounded(title: str, link: str, guid: str | None) -> None:
    item = ParsedItem(title, link=link or None, guid=guid)
    assert stable_id(item, "s") == stable_id(item, "s")
    assert 0 < len(stable_id(item, "s")) <= 255


def test_find_infocode_ignores_other_params() -> None:
    assert find_infocode("http://a/?id=NW202201252261008680") is None  # only the infoCode key
    assert find_infocode(None) is None
    assert find_infocode("http://a/?infoCode=garbage") is None


_URL_PIECES = st.sampled_from(
    [
        "http://a.example/x.html",
        "?",
        "&",
        "#",
        "=",
        "infoCode=",
        "INFOCODE=",
        "info%43ode=",
        "id=",
        "NW202201252261008680",
        "AP202305011586123456",
        "nw202201252261008680",
        "+",
        "%20",
        " ",
        "[",
        "é",
        "/",
        "0",
        ";",
        "infocode",
    ]
)


@given(st.lists(_URL_PIECES, max_size=12).map("".join))
def test_the_quick_infocode_read_agrees_with_the_full_parse(url: str) -> None:
    assert find_infocode(url) == _parse_infocode(url)


def test_the_quick_read_takes_the_common_link() -> None:
    link = "http://finance.eastmoney.com/a/NewsShare.html?infoCode=NW202201252261008680&x=1"
    assert find_infocode(link) == "NW202201252261008680"
    assert find_infocode(link + "#infoCode=AP202305011586123456") == "NW202201252261008680"
