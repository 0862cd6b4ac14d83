"""The pure decide step: kinds of intent, dates, titles, categories."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.ingest.decide import (
    UNCATEGORIZED,
    CategoryRegistry,
    CategoryRule,
    content_sha256,
    intent_kind,
    plan_items,
    settle_date,
    settle_title,
)
from aggregator.model import CategoryRef, Holder, IntentKind, KnownItem, Media, ParsedItem
from aggregator.slug import identity_key

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
SZB = CategoryRef("shanghaizhengquanbao", "上海证券报新闻", name="上海证券报")


def registry() -> CategoryRegistry:
    reg = CategoryRegistry()
    reg.add(SZB, None)
    reg.by_key[identity_key("上海证券报")] = SZB.slug
    return reg


def item(title: str = "t", **kw: object) -> ParsedItem:
    return ParsedItem(title, **kw)  # type: ignore[arg-type]


def plan(
    pairs: list[tuple[str, ParsedItem]],
    known: dict[str, KnownItem] | None = None,
    rule: CategoryRule | None = None,
    reg: CategoryRegistry | None = None,
):  # type: ignore[no-untyped-def]
    return plan_items(
        pairs, known or {}, rule or CategoryRule(fixed=SZB), reg or registry(), NOW, SHANGHAI
    )


def test_kinds_of_intent() -> None:
    same = item("same")
    changed_before, changed_now = item("v1"), item("v2")
    known = {
        "same": KnownItem("same", content_sha256(same), frozenset({SZB.slug}), Holder.SELF),
        "changed": KnownItem(
            "changed", content_sha256(changed_before), frozenset({SZB.slug}), Holder.SELF
        ),
        "other-source": KnownItem("other-source", None, frozenset({"cnstock"}), Holder.PREVAILING),
        "new-category": KnownItem(
            "new-category", content_sha256(same), frozenset({"x"}), Holder.SELF
        ),
        "lower-copy": KnownItem("lower-copy", None, frozenset({SZB.slug}), Holder.YIELDING),
    }
    result = plan(
        [
            ("new", item("n")),
            ("same", same),
            ("changed", changed_now),
            ("other-source", item("o")),
            ("new-category", same),
            ("lower-copy", item("mine")),
        ],
        known,
    )
    kinds = {i.stable_id: i.kind for i in result.intents}
    assert kinds == {
        "new": IntentKind.NEW,
        "changed": IntentKind.UPDATED,
        "other-source": IntentKind.MEMBERSHIP,
        "new-category": IntentKind.MEMBERSHIP,
        "lower-copy": IntentKind.UPDATED,
    }
    assert result.unchanged_count == 1


MINE, OLD = "h-mine", "h-old"


@pytest.mark.parametrize(
    ("holder", "source_sha256", "slugs", "expected"),
    [
        # whose copy is stored: this source's own
        (Holder.SELF, MINE, {"a"}, None),
        (Holder.SELF, OLD, {"a"}, IntentKind.UPDATED),
        (Holder.SELF, MINE, {"b"}, IntentKind.MEMBERSHIP),
        # a source's this one takes precedence over: replaced, changed or not
        (Holder.YIELDING, None, {"a"}, IntentKind.UPDATED),
        (Holder.YIELDING, MINE, {"a"}, IntentKind.UPDATED),
        (Holder.YIELDING, OLD, {"b"}, IntentKind.UPDATED),
        # a source's that takes precedence over this one: never replaced
        (Holder.PREVAILING, None, {"a"}, IntentKind.MEMBERSHIP),
        (Holder.PREVAILING, MINE, {"a"}, None),
        (Holder.PREVAILING, OLD, {"a"}, None),
        (Holder.PREVAILING, OLD, {"b"}, IntentKind.MEMBERSHIP),
    ],
    ids=[
        "own copy, unchanged",
        "own copy, changed",
        "own copy, new category",
        "lower copy, first seen here",
        "lower copy, seen here before",
        "lower copy, changed, new category",
        "higher copy, first seen here",
        "higher copy, unchanged here",
        "higher copy, changed here: still theirs",
        "higher copy, new category: membership only",
    ],
)
def test_intent_kind_follows_precedence(
    holder: Holder, source_sha256: str | None, slugs: set[str], expected: IntentKind | None
) -> None:
    stored = KnownItem("x", source_sha256, frozenset(slugs), holder)
    assert intent_kind(stored, MINE, "a") is expected
    assert intent_kind(None, MINE, "a") is IntentKind.NEW


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        (None, (NOW, 480, False)),
        (NOW + timedelta(days=1), (NOW, 0, False)),
        (NOW - timedelta(days=1), (NOW - timedelta(days=1), 0, True)),
    ],
    ids=["missing: first seen", "future: clamped", "past: kept"],
)
def test_settle_date(published: datetime | None, expected: tuple[datetime, int, bool]) -> None:
    assert (
        settle_date(
            item(published_at=published, published_offset_minutes=0 if published else None),
            NOW,
            SHANGHAI,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("parsed", "expected"),
    [
        (item("标题"), "标题"),
        (item("", summary="<p>只有摘要</p>"), "只有摘要"),
        (item("", content="<p>" + "长" * 100 + "</p>"), "长" * 60 + "…"),
        (item("", summary="<p>Markets rallied.</p>"), "Markets rallied."),
        (
            item("", summary='<p><img src="http://a.example/c.png"></p>', content="<p>Text</p>"),
            "Text",
        ),
        (item("", summary='<img src="http://a.example/c.png">'), ""),
        (item(""), ""),
    ],
    ids=[
        "title",
        "from summary",
        "from content, cut",
        "English text",
        "summary without text: from content",
        "no text: empty, in no language",
        "nothing",
    ],
)
def test_settle_title(parsed: ParsedItem, expected: str) -> None:
    assert settle_title(parsed) == expected


def test_category_from_media_name_uses_configured_and_derives_new() -> None:
    rule = CategoryRule(from_field="author", title_template="{name}新闻")
    reg = registry()
    result = plan(
        [
            ("a", item(category_name="上海证券报")),
            ("b", item(category_name="TechWeb")),
            ("c", item(category_name="Techweb")),
            ("d", item()),
        ],
        rule=rule,
        reg=reg,
    )
    slugs = [i.categories[0].slug for i in result.intents]
    assert slugs == ["shanghaizhengquanbao", "techweb", "techweb", UNCATEGORIZED.slug]
    assert result.intents[1].categories[0].title == "TechWeb新闻"
    assert [c.slug for c in result.new_categories] == ["techweb"]


def test_colliding_media_names_in_one_batch_do_not_merge() -> None:
    rule = CategoryRule(from_field="author")
    result = plan(
        [("a", item(category_name="中证网")), ("b", item(category_name="中正网"))], rule=rule
    )
    first, second = (i.categories[0].slug for i in result.intents)
    assert first == "zhongzhengwang"
    assert second.startswith("zhongzhengwang-")
    assert second != first


def test_content_is_sanitized_and_links_resolved() -> None:
    result = plan(
        [
            (
                "a",
                item(
                    link="http://news.example/a/1.html",
                    content='<p onclick="x()">hi <a href="../2.html">next</a>'
                    "<script>alert(1)</script></p>",
                ),
            )
        ]
    )
    (intent,) = result.intents
    assert intent.content == (
        '<p>hi <a href="http://news.example/2.html" rel="noopener noreferrer">next</a></p>'
    )


def test_external_content_is_not_part_of_the_change_hash() -> None:
    listed = item("t", is_content_external=True)
    assert content_sha256(listed) == content_sha256(
        item("t", content="<p>body</p>", is_content_external=True)
    )


def test_media_are_part_of_the_change_hash_only_for_items_that_have_some() -> None:
    """An item without media hashes as it did before media were read (no stored item
    becomes an update for it); a changed enclosure is a change."""
    plain = item("t", content="<p>body</p>")
    legacy = json.dumps(
        ["t", None, None, "<p>body</p>", None, None, None], ensure_ascii=False
    ).encode()
    assert content_sha256(plain) == hashlib.sha256(legacy).hexdigest()
    audio = ParsedItem("t", content="<p>body</p>", media=(Media("http://c/1.mp3"),))
    longer = ParsedItem("t", content="<p>body</p>", media=(Media("http://c/1.mp3", length=9),))
    assert len({content_sha256(plain), content_sha256(audio), content_sha256(longer)}) == 3
    assert content_sha256(audio) == content_sha256(replace(audio))


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # no lone surrogates


@given(
    title=_TEXT,
    link=st.none() | _TEXT,
    summary=st.none() | _TEXT,
    content=st.none() | _TEXT,
    author=st.none() | _TEXT,
    category=st.none() | _TEXT,
    published=st.none() | st.datetimes(timezones=st.just(UTC)),
    external=st.booleans(),
)
def test_the_change_hash_is_sha256_of_the_json_of_its_fields(
    title: str,
    link: str | None,
    summary: str | None,
    content: str | None,
    author: str | None,
    category: str | None,
    published: datetime | None,
    external: bool,
) -> None:
    """Stored hashes were made with json.dumps; the spelled-out encoding must match it."""
    parsed = item(
        title,
        link=link,
        summary=summary,
        content=content,
        author=author,
        category_name=category,
        published_at=published,
        is_content_external=external,
    )
    fields = [
        title,
        link,
        summary,
        None if external else content,
        author,
        published.isoformat() if published else None,
        category,
    ]
    expected = hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8"))
    assert content_sha256(parsed) == expected.hexdigest()
