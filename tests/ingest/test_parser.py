"""The parser against golden feed files (tests/fixtures/feeds/NAME + NAME.expected.json)
and targeted cases: encodings, dates, JSON Feed, JSON API records."""

from __future__ import annotations

import email.utils
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.ingest.fields import ParseRules, _rfc822, parse_date
from aggregator.ingest.parser import parse_body
from aggregator.model import FeedHints
from tests.conftest import FIXTURES, load_seed
from tests.ingest.test_encodings import LATIN

SHANGHAI = ZoneInfo("Asia/Shanghai")
GOLDEN = sorted(
    p
    for p in FIXTURES.iterdir()
    if p.suffix in (".xml", ".rss", ".atom", ".rdf", ".json")
    and not p.name.endswith(".expected.json")
)


def expected_of(path: Path) -> dict[str, object]:
    return json.loads(path.with_name(path.name + ".expected.json").read_text(encoding="utf-8"))


def expected_date(text: str | None) -> tuple[datetime, int] | None:
    if text is None:
        return None
    if text.startswith("naive:"):  # a date without offset, read in the source's zone
        local = datetime.fromisoformat(text.removeprefix("naive:")).replace(tzinfo=SHANGHAI)
        return local.astimezone(UTC), 480
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        parsed = parse_date(text)
        assert parsed is not None
        return parsed
    offset = moment.utcoffset()
    assert offset is not None
    return moment.astimezone(UTC), int(offset.total_seconds() // 60)


@pytest.mark.parametrize("path", GOLDEN, ids=[p.name for p in GOLDEN])
def test_golden_feed(path: Path) -> None:
    expected = expected_of(path)
    feed = parse_body(path.read_bytes(), None, ParseRules(source_tz=SHANGHAI))
    assert feed.title == expected["feed_title"]
    items = expected["items"]
    assert isinstance(items, list)
    assert len(feed.items) == len(items)
    for got, want in zip(feed.items, items, strict=True):
        assert got.title == (want["title"] or "")  # the parser says what the feed said
        assert got.link == want["link"]
        assert got.guid == want["guid"]
        assert got.author == want["author"]
        date = expected_date(want["published"])
        if date is None:
            assert got.published_at is None
        else:
            assert (got.published_at, got.published_offset_minutes) == date
    if "media_base" in expected:  # media, with relative URLs resolved against the feed
        rules = ParseRules(source_tz=SHANGHAI, base_url=str(expected["media_base"]))
        media = [
            [{k: v for k, v in asdict(m).items() if v is not None} for m in item.media]
            for item in parse_body(path.read_bytes(), None, rules).items
        ]
        assert media == [want["media"] for want in items]


def test_seed_body_survives_parsing_byte_for_byte() -> None:
    seed = load_seed()
    for name in ("seed.rss", "seed.atom"):
        (item,) = parse_body((FIXTURES / name).read_bytes(), None, ParseRules()).items
        assert item.content == seed.body_html, name


@pytest.mark.parametrize(
    "codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-16", "utf-32"]
)
def test_wide_bodies_without_or_with_a_byte_order_mark_parse(codec: str) -> None:
    """A BOM-less UTF-16 or UTF-32 feed whose text is ASCII was read as UTF-8 and
    refused as not a feed (issue 13)."""
    rss = (
        f'<?xml version="1.0" encoding="{codec.upper()}"?><rss version="2.0"><channel>'
        "<title>wide</title><item><title>One</title><link>http://w.example/1</link></item>"
        "</channel></rss>"
    )
    feed = parse_body(rss.encode(codec), "application/rss+xml", ParseRules())
    assert [item.title for item in feed.items] == ["One"]
    assert feed.warnings == ()
    json_feed = (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "j", '
        '"items": [{"id": "1", "title": "One"}]}'
    )
    feed = parse_body(json_feed.encode(codec), "application/feed+json", ParseRules())
    assert [item.title for item in feed.items] == ["One"]


@pytest.mark.parametrize("allow_fast", [True, False], ids=["fast path", "feedparser"])
def test_a_fallback_charset_is_a_warning_of_the_feed(allow_fast: bool) -> None:
    from aggregator.ingest.parser import parse_xml

    body = LATIN.format("très").encode("latin-1")
    feed = parse_xml(body, None, ParseRules(), allow_fast=allow_fast)
    assert [item.title for item in feed.items] == ["très"]
    assert feed.warnings == (
        "charset: none declared, and the bytes are not UTF-8; read as windows-1252",
    )
    api = parse_body(
        '{"record": [{"id": "1", "title": "très"}]}'.encode("latin-1"),
        None,
        ParseRules(kind="json", items_path="record", fields={"id": "id", "title": "title"}),
    )
    assert [item.title for item in api.items] == ["très"]
    assert api.warnings[0].endswith("read as windows-1252")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tue, 25 Jan 2022 15:24:31 +0800", (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 480)),
        ("2022-01-25T15:24:31+08:00", (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 480)),
        ("2022-01-25T07:24:31Z", (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 0)),
        ("2022-01-25 15:24:31", (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 480)),
        ("Tue, 25 Jan 2022 07:24:31 GMT", (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 0)),
        ("not a date", None),
        ("", None),
        (1643095471, (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 480)),
        (1643095471000, (datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC), 480)),
    ],
    ids=[
        "rfc822",
        "rfc3339",
        "zulu",
        "naive in source zone",
        "gmt",
        "garbage",
        "empty",
        "epoch seconds",
        "epoch milliseconds",
    ],
)
def test_parse_date(raw: object, expected: tuple[datetime, int] | None) -> None:
    assert parse_date(raw, SHANGHAI) == expected


def test_json_api_field_map_and_format() -> None:
    body = json.dumps(
        {
            "record": [
                {
                    "infoCode": "NW202201252261008680",
                    "title": "<b>标题</b> &amp; 更多",
                    "showtime": "2022/01/25 15:24",
                    "mediaName": " 上海证券报 ",
                    "url": "/n/1",
                },
                {"title": "no id"},
            ]
        }
    ).encode()
    rules = ParseRules(
        kind="json",
        base_url="http://finews.example/list",
        source_tz=SHANGHAI,
        items_path="record",
        date_format="%Y/%m/%d %H:%M",
        fields={
            "id": "infoCode",
            "title": "title",
            "published": "showtime",
            "link": "url",
            "category_from": "mediaName",
        },
    )
    feed = parse_body(body, "application/json", rules)
    (item,) = feed.items
    assert item.title == "标题 & 更多"
    assert item.link == "http://finews.example/n/1"
    assert item.guid == item.api_id == "NW202201252261008680"
    assert item.category_name == "上海证券报"
    assert item.published_at == datetime(2022, 1, 25, 7, 24, tzinfo=UTC)
    assert feed.warnings == ("1 records without id or title skipped",)


@pytest.mark.parametrize(
    ("body", "rules", "message"),
    [
        (b"", ParseRules(), "empty body"),
        (b"   \n", ParseRules(), "empty body"),
        (b"<!DOCTYPE html><html><body>x</body></html>", ParseRules(), "an HTML page, not a feed"),
        (b'{"a": 1}', ParseRules(), "JSON that is not a JSON Feed (for a JSON API set type: json)"),
        (
            b"{nope",
            ParseRules(kind="json"),
            "not valid JSON: Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1)",
        ),
        (
            b'{"record": 3}',
            ParseRules(kind="json", items_path="record", fields={"id": "a"}),
            "items_path 'record' does not lead to a list",
        ),
    ],
    ids=["empty", "blank", "html page", "json not feed", "bad json", "items_path not a list"],
)
def test_unreadable_bodies_raise_one_line(body: bytes, rules: ParseRules, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_body(body, None, rules)
    assert str(caught.value) == message


def test_category_from_author_uses_the_name() -> None:
    atom = (FIXTURES / "atom10.xml").read_bytes()
    feed = parse_body(atom, None, ParseRules(category_from="author"))
    assert all(item.category_name == item.author for item in feed.items)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_parse_error(body: bytes) -> None:
    try:
        feed = parse_body(body, None, ParseRules())
    except ParseError:
        return
    assert all(isinstance(item.title, str) for item in feed.items)


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40), st.integers(min_value=-720, max_value=840))
def test_dates_always_come_back_aware_utc(noise: str, offset: int) -> None:
    moment = datetime(2022, 1, 25, 15, 24, 31, tzinfo=timezone(timedelta(minutes=offset)))
    for raw in (moment.isoformat(), noise):
        parsed = parse_date(raw, SHANGHAI)
        if parsed is not None:
            assert parsed[0].tzinfo is UTC


@given(
    weekday=st.sampled_from(["", "Mon, ", "Fri, ", "Sun, "]),
    day=st.integers(0, 32),
    month=st.sampled_from(["Jan", "Feb", "Jun", "Sep", "Dec", "Foo"]),
    year=st.integers(1, 9999),
    clock=st.tuples(st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)),
    sign=st.sampled_from("+-"),
    offset=st.tuples(st.integers(0, 16), st.integers(0, 61)),
)
def test_the_quick_rss_date_read_agrees_with_email_utils(
    weekday: str,
    day: int,
    month: str,
    year: int,
    clock: tuple[int, int, int],
    sign: str,
    offset: tuple[int, int],
) -> None:
    text = (
        f"{weekday}{day} {month} {year:04d} {clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d} "
        f"{sign}{offset[0]:02d}{offset[1]:02d}"
    )
    quick = _rfc822(text)
    if quick is not None:  # None: email.utils reads it
        full = email.utils.parsedate_to_datetime(text)
        assert (quick, quick.utcoffset()) == (full, full.utcoffset())


JSON_FEED = "https://jsonfeed.org/version/1.1"


def test_a_json_feed_with_bad_fields_keeps_every_item() -> None:
    """One field of the wrong type refused the whole feed with "parser failed:
    TypeError" (issue 13). Now a number where text belongs is read as text, anything
    else is dropped, every item is kept, and one warning lists what was wrong."""
    data = {
        "version": JSON_FEED,
        "title": 7,
        "items": [
            {"id": "1", "title": "good", "url": "http://j.example/1"},
            {"id": "2", "title": 1000},
            {
                "id": 3,
                "title": ["x"],
                "summary": "from the summary",
                "url": {"a": 1},
                "tags": "abc",
                "authors": {"name": "x"},
                "date_published": 1643095471,
                "content_html": False,
            },
            "not an item",
            {"id": "4", "title": "t4", "authors": [{"name": 5}], "tags": ["a", 1, None]},
        ],
    }
    feed = parse_body(json.dumps(data).encode(), None, ParseRules())
    assert feed.title == "7"
    assert [(i.guid, i.title, i.link) for i in feed.items] == [
        ("1", "good", "http://j.example/1"),
        ("2", "1000", None),
        ("3", "from the summary", None),
        ("4", "t4", None),
    ]
    third, fourth = feed.items[2], feed.items[3]
    assert (third.tags, third.author, third.content) == ((), None, None)
    assert third.published_at == datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC)
    assert (fourth.author, fourth.tags) == ("5", ("a", "1"))
    assert feed.warnings == (
        "JSON Feed: 11 fields of the wrong type: items[1].title: a number, read as text; "
        "items[2].authors: an object, dropped; items[2].date_published: a number, read as "
        "epoch seconds (+8 more)",
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
ITEM_KEYS = [
    "id",
    "url",
    "title",
    "summary",
    "content_html",
    "content_text",
    "date_published",
    "date_modified",
    "authors",
    "author",
    "tags",
    "image",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(ITEM_KEYS), JSON_VALUES, max_size=8) | JSON_VALUES,
        max_size=5,
    ),
    JSON_VALUES,
)
def test_a_json_feed_keeps_every_item_whatever_its_fields_hold(
    items: list[object], title: object
) -> None:
    data = {"version": JSON_FEED, "title": title, "items": items}
    feed = parse_body(json.dumps(data).encode(), None, ParseRules(category_from="author"))
    assert len(feed.items) == sum(isinstance(item, dict) for item in items)
    assert all(isinstance(item.title, str) for item in feed.items)


AMPERSAND = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>AT{amp}T</title><link>http://x.example/1</link></item></channel></rss>"
)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param("\n<!-- cache -->\n", id="comment"),
        pytest.param("<?cache hit?>", id="processing instruction"),
        pytest.param("\r\n\t \n", id="white space"),
        pytest.param("<!-- a -->\n<?b c?>\n<!-- d -->", id="several"),
        pytest.param("\n<div>served in 3 ms</div>\n", id="markup a template appended"),
    ],
)
@pytest.mark.parametrize("amp", ["&amp;", "&"], ids=["well-formed", "bare ampersand"])
def test_what_follows_the_root_element_does_not_make_a_feed_truncated(tail: str, amp: str) -> None:
    """`</rss>` followed by `<!-- cache -->` was refused as truncated whenever the feed
    was read leniently (issue 13): the check wanted the body to end with the end tag."""
    feed = parse_body((AMPERSAND.format(amp=amp) + tail).encode(), None, ParseRules())
    assert [item.link for item in feed.items] == ["http://x.example/1"]
    assert feed.items[0].title.startswith("AT&T")


@pytest.mark.parametrize("tail", ["", "\n<!-- cache -->\n"], ids=["bare", "comment after"])
def test_a_body_cut_before_the_end_tag_is_still_truncated(tail: str) -> None:
    cut = AMPERSAND.format(amp="&")[:-30] + tail
    with pytest.raises(ParseError, match=r"^truncated: the body ends before </rss>"):
        parse_body(cut.encode(), None, ParseRules())


@pytest.mark.parametrize(
    ("channel", "hints"),
    [
        pytest.param("", None, id="none"),
        pytest.param("<ttl>60</ttl>", FeedHints(ttl_minutes=60), id="ttl"),
        pytest.param("<ttl> 15 </ttl>", FeedHints(ttl_minutes=15), id="ttl with spaces"),
        pytest.param("<ttl>soon</ttl>", None, id="ttl not a number"),
        pytest.param(
            "<skipHours><hour>0</hour><hour>1</hour><hour>24</hour><hour>25</hour></skipHours>",
            FeedHints(skip_hours=frozenset({0, 1})),
            id="skipHours (24 is midnight, 25 is nothing)",
        ),
        pytest.param(
            "<skipDays><day>Saturday</day><day>sunday</day><day>Caturday</day></skipDays>",
            FeedHints(skip_days=frozenset({5, 6})),
            id="skipDays",
        ),
        pytest.param(
            "<ttl>30</ttl><skipHours><hour>3</hour></skipHours><skipDays><day>Monday</day>"
            "</skipDays>",
            FeedHints(ttl_minutes=30, skip_hours=frozenset({3}), skip_days=frozenset({0})),
            id="all three",
        ),
    ],
)
@pytest.mark.parametrize("amp", ["&amp;", "&"], ids=["fast path", "feedparser"])
def test_rss_ttl_skip_hours_and_skip_days_are_read(
    channel: str, hints: FeedHints | None, amp: str
) -> None:
    """<ttl> was ignored (issue 13); both paths read it, with skipHours and skipDays
    (feedparser itself keeps only the last <hour>)."""
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>A{amp}B</title><link>http://h.example/1</link></item>{channel}"
        "</channel></rss>"
    )
    assert parse_body(body.encode(), None, ParseRules()).hints == hints
