"""Each processing step on its own, table-driven, with a fake page fetch; then the stage:
unchanged items and items dropped before are not processed again."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from aggregator.config.steps import StepConfig
from aggregator.errors import FetchError
from aggregator.ingest.decide import content_sha256
from aggregator.model import DroppedItem, Holder, KnownItem, ParsedItem
from aggregator.process.stage import process_items
from aggregator.process.steps import STEPS, compile_steps
from aggregator.process.values import Dropped, FetchedPage, ProcessContext

STEP = TypeAdapter(StepConfig)


def pipeline(*steps: dict[str, Any]):  # type: ignore[no-untyped-def]
    return compile_steps(tuple(STEP.validate_python(step) for step in steps))


def item(**fields: Any) -> ParsedItem:
    fields.setdefault("title", "标题")
    return ParsedItem(**fields)


def run(steps: list[dict[str, Any]], it: ParsedItem, **context: Any) -> ParsedItem | Dropped:
    return pipeline(*steps).run(it, ProcessContext("src", **context))


def test_the_registry_names_every_configurable_step() -> None:
    from aggregator.config.steps import STEP_MODELS

    assert set(STEPS) == set(STEP_MODELS)


FILTER_CASES = [
    pytest.param({"block": {"pattern": "广告"}}, item(title="广告：开户"), False, id="block title"),
    pytest.param({"block": {"pattern": "广告"}}, item(title="央行降息"), True, id="block misses"),
    pytest.param(
        {"block": {"pattern": "广告", "fields": ["title"]}},
        item(title="新闻", content="<p>广告</p>"),
        True,
        id="block only in the named fields",
    ),
    pytest.param(
        {"block": {"pattern": "div"}},
        item(content="<div>纯文本</div>"),
        True,
        id="block does not see markup",
    ),
    pytest.param(
        {"block": {"pattern": "推广", "fields": ["categories"]}},
        item(tags=("推广",)),
        False,
        id="block categories",
    ),
    pytest.param(
        {"block": {"pattern": "spam\\.example", "fields": ["link"]}},
        item(link="https://spam.example/x"),
        False,
        id="block link",
    ),
    pytest.param({"keep": {"pattern": "A股|港股"}}, item(title="港股高开"), True, id="keep hit"),
    pytest.param(
        {"keep": {"pattern": "A股|港股"}},
        item(title="天气", content="<p>A股收涨</p>"),
        True,
        id="keep hit in content",
    ),
    pytest.param({"keep": {"pattern": "A股"}}, item(title="天气"), False, id="keep miss"),
    pytest.param(
        {"keep": {"pattern": "A股", "fields": ["author"]}},
        item(title="A股"),
        False,
        id="keep an empty field",
    ),
]


@pytest.mark.parametrize(("step", "given", "kept"), FILTER_CASES)
def test_keep_and_block(step: dict[str, Any], given: ParsedItem, kept: bool) -> None:
    result = run([step], given)
    assert (result == given) if kept else isinstance(result, Dropped)


def test_a_dropped_item_says_why() -> None:
    result = run([{"block": {"pattern": "广告|推广"}}], item(title="直播推广"))
    assert result == Dropped("block: title has '推广'")


REWRITE_CASES = [
    pytest.param(
        {"remove": ["div.share", "img[src*='qrcode']"]},
        item(content='<p>正文</p><div class="share">分享</div><img src="/qrcode.png">尾'),
        {"content": "<p>正文</p>尾"},
        id="remove keeps the text after",
    ),
    pytest.param(
        {"remove": ["p.editor"]},
        item(content="<p>正文</p>", summary='<p>摘要</p><p class="editor">（编辑）</p>'),
        {"summary": "<p>摘要</p>"},
        id="remove in summary; content untouched",
    ),
    pytest.param(
        {"replace": [{"pattern": "（责任编辑：.*?）", "with": "", "fields": ["content"]}]},
        item(title="（责任编辑：甲）", content="<p>正文（责任编辑：甲）</p>"),
        {"content": "<p>正文</p>"},
        id="replace in the named fields only",
    ),
    pytest.param(
        {"replace": [{"pattern": r"【(\w+)】", "with": r"[\1]"}]},
        item(title="【快讯】央行"),
        {"title": "[快讯]央行"},
        id="replace with a group",
    ),
    pytest.param(
        {"drop_query": ["utm_*", "from"]},
        item(link="https://a.cn/x.html?id=3&utm_source=rss&from=mirror#top"),
        {"link": "https://a.cn/x.html?id=3#top"},
        id="drop_query on the link",
    ),
    pytest.param(
        {"drop_query": ["from"]},
        item(link="https://a.cn/x.html?from=mirror"),
        {"link": "https://a.cn/x.html"},
        id="drop_query leaves no empty query",
    ),
    pytest.param(
        {"drop_query": ["spm"]},
        item(content='<a href="https://a.cn/y?spm=1&amp;k=%E4%B8%AD">y</a>'),
        {"content": '<a href="https://a.cn/y?k=%E4%B8%AD">y</a>'},
        id="drop_query in content links keeps the rest as written",
    ),
]


@pytest.mark.parametrize(("options", "given", "changes"), REWRITE_CASES)
def test_rewrite(options: dict[str, Any], given: ParsedItem, changes: dict[str, str]) -> None:
    from dataclasses import replace

    assert run([{"rewrite": options}], given) == replace(given, **changes)


def test_rewrite_without_a_match_keeps_the_item_as_it_was() -> None:
    given = item(content="<p>正文 <b>粗</b></p>", link="https://a.cn/x?id=1")
    steps = [{"rewrite": {"remove": ["div.share"], "drop_query": ["utm_*"]}}]
    assert run(steps, given) is given


def test_convert_both_ways() -> None:
    simplified = item(title="简体中文的发展", content="<p>头发与发展</p>")
    traditional = run([{"convert": {"to": "zh-hant"}}], simplified)
    assert isinstance(traditional, ParsedItem)
    assert traditional.title == "簡體中文的發展"
    assert traditional.content == "<p>頭髮與發展</p>"  # 发 by its phrase: 髮 or 發
    back = run([{"convert": {"to": "zh-hans"}}], traditional)
    assert isinstance(back, ParsedItem)
    assert (back.title, back.content) == (simplified.title, simplified.content)


ARTICLE = (
    "<html><head><title>t</title></head><body><div class='nav'>首页</div>"
    "<div id='ContentBody'><p>" + "正文" * 200 + "</p></div><div class='footer'>版权</div>"
    "</body></html>"
)


class FakePages:
    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def __call__(self, url: str) -> FetchedPage:
        self.asked.append(url)
        if url not in self.pages:
            raise FetchError(f"HTTP 404 for {url}")
        return FetchedPage(url, self.pages[url])


def test_full_text_takes_the_article_by_selector_and_keeps_the_teaser_as_summary() -> None:
    pages = FakePages({"https://a.cn/1": ARTICLE})
    given = item(link="https://a.cn/1", content="<p>导语</p>")
    steps = [{"full_text": {"selector": "div#ContentBody"}}]
    result = run(steps, given, fetch_page=pages)
    assert isinstance(result, ParsedItem)
    assert result.content == '<div id="ContentBody"><p>' + "正文" * 200 + "</p></div>"
    assert result.summary == "<p>导语</p>"
    assert pages.asked == ["https://a.cn/1"]


def test_full_text_leaves_long_content_alone() -> None:
    pages = FakePages({})
    given = item(link="https://a.cn/1", content="<p>" + "长" * 300 + "</p>")
    assert run([{"full_text": {"min_chars": 300}}], given, fetch_page=pages) is given
    assert pages.asked == []


def test_full_text_failure_keeps_the_item_and_warns() -> None:
    context = ProcessContext("src", fetch_page=FakePages({}))
    given = item(link="https://a.cn/gone", content="<p>导语</p>")
    assert pipeline({"full_text": {"min_chars": 0}}).run(given, context) is given
    assert context.warnings == [
        "full text of https://a.cn/gone: FetchError: HTTP 404 for https://a.cn/gone"
    ]


def test_full_text_page_url_and_its_guard() -> None:
    pages = FakePages({"file:///srv/pages/1.html": ARTICLE})
    steps = [
        {
            "full_text": {
                "selector": "#ContentBody",
                "page_url": {"pattern": "^https://a\\.cn/(.*)$", "with": r"file:///srv/pages/\1"},
            }
        }
    ]
    result = run(steps, item(link="https://a.cn/1.html"), fetch_page=pages)
    assert isinstance(result, ParsedItem)
    assert result.content
    context = ProcessContext("src", fetch_page=pages)
    given = item(link="https://a.cn/../../etc/passwd")
    assert pipeline(*steps).run(given, context) is given
    assert "refused page address" in context.warnings[0]
    assert pages.asked == ["file:///srv/pages/1.html"]


def test_compile_steps_once_per_configuration() -> None:
    config = tuple(STEP.validate_python({"block": {"pattern": "x"}}) for _ in range(1))
    assert compile_steps(config) is compile_steps(config)
    other = (STEP.validate_python({"block": {"pattern": "y"}}),)
    assert compile_steps(config).fingerprint != compile_steps(other).fingerprint


def test_stage_skips_unchanged_and_already_dropped_items() -> None:
    steps = pipeline({"block": {"pattern": "广告"}}, {"full_text": {"min_chars": 0}})
    unchanged = item(title="旧闻", link="https://a.cn/old")
    ad = item(title="广告", link="https://a.cn/ad")
    dropped_before = item(title="广告二", link="https://a.cn/ad2")
    new = item(title="新闻", link="https://a.cn/new")
    pages = FakePages({"https://a.cn/new": ARTICLE})
    known = {"old": KnownItem("old", content_sha256(unchanged), frozenset(), Holder.SELF)}
    before = {"ad2": (content_sha256(dropped_before), steps.fingerprint)}
    result = process_items(
        [("old", unchanged), ("ad", ad), ("ad2", dropped_before), ("new", new)],
        known,
        before,
        steps,
        content_sha256,
        "src",
        pages,
    )
    assert [item_id for item_id, _ in result.pairs] == ["old", "new"]
    assert result.pairs[0][1] is unchanged
    assert pages.asked == ["https://a.cn/new"]  # not the unchanged item, not the ads
    assert result.dropped == (
        DroppedItem("ad", content_sha256(ad), steps.fingerprint, "block: title has '广告'"),
    )
    assert result.dropped_count == 2
    assert result.digests["new"] == content_sha256(new)  # what the source gave


def test_stage_processes_a_dropped_item_again_when_the_steps_change() -> None:
    ad = item(title="广告")
    old = pipeline({"block": {"pattern": "广告"}})
    new = pipeline({"block": {"pattern": "推广"}})
    before = {"ad": (content_sha256(ad), old.fingerprint)}
    result = process_items([("ad", ad)], {}, before, new, content_sha256, "src")
    assert result.pairs == (("ad", ad),)
    assert result.dropped_count == 0


@pytest.mark.parametrize(
    ("holder", "fetched"),
    [
        pytest.param(Holder.SELF, False, id="this source's own copy, unchanged: as it is"),
        pytest.param(Holder.YIELDING, True, id="a lower source's copy: this one replaces it"),
        pytest.param(Holder.PREVAILING, False, id="a higher source's copy: category only"),
    ],
)
def test_the_stage_fetches_a_page_only_for_a_copy_that_will_be_stored(
    holder: Holder, fetched: bool
) -> None:
    """Source precedence decides whose copy of a shared item is stored: a page is fetched
    for this source's copy only when that copy will be the one stored."""
    steps = pipeline({"full_text": {"min_chars": 0}})
    teaser = item(title="新闻", link="https://a.cn/new")
    pages = FakePages({"https://a.cn/new": ARTICLE})
    known = {"n": KnownItem("n", content_sha256(teaser), frozenset(), holder)}
    process_items([("n", teaser)], known, {}, steps, content_sha256, "src", pages)
    assert pages.asked == (["https://a.cn/new"] if fetched else [])
