"""The orchestrator end to end: real HTTP server, real parser, real store (SQLite and
PostgreSQL). Covers the ingest issue's "must show" list. Then its pure steps, table-driven:
the source's next state, a feed's warnings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config.settings import Settings, parse_settings
from aggregator.ingest.fetcher import Fetcher
from aggregator.ingest.update import Context, feed_warnings, next_source_update
from aggregator.model import HTTPFacts, OutcomeKind, ParsedFeed, ParsedItem, SourceState
from aggregator.runtime.scheduler import run_pass
from aggregator.store import SourceUpdate
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES, Seed
from tests.feedserver import FeedServer, Route

CONFIG = """
database: sqlite:///unused.db
allow_networks: [127.0.0.0/8]
timezone: Asia/Shanghai
defaults: {{interval: 10m, workers: 4}}
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
sources:
  - id: eastmoney
    url: {rss}
    category_from: author
  - id: cnstock
    url: {atom}
    category_from: author
"""


def make_context(settings: Settings, store: SqlStore, now: datetime | None = None) -> Context:
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return Context(
        settings=settings,
        store=store,
        fetcher=Fetcher("aggregator-test"),
        owner="test-owner",
        now=clock,
    )


@pytest.fixture
def seed_sources(feed_server: FeedServer) -> Iterator[Settings]:
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/seed.atom"] = Route(
        (FIXTURES / "seed.atom").read_bytes(), content_type="application/atom+xml"
    )
    return parse_settings(
        CONFIG.format(rss=feed_server.url("/seed.rss"), atom=feed_server.url("/seed.atom"))
    )


def test_seed_fetched_three_times_from_two_sources_is_stored_once(
    store: SqlStore, seed_sources: Settings, feed_server: FeedServer, seed: Seed
) -> None:
    ctx = make_context(seed_sources, store)
    first, _ = run_pass(ctx)
    assert {o.source_id: o.kind for o in first} == {
        "eastmoney": OutcomeKind.OK,
        "cnstock": OutcomeKind.OK,
    }
    run_pass(ctx)
    run_pass(ctx)

    assert store.count_items() == 1
    item = store.find_item(seed.info_code)
    assert item is not None
    assert item.title == seed.title
    assert item.link == seed.link
    assert item.content == seed.body_html  # sanitized, and harmless markup survives
    assert item.published_at == seed.published_utc
    assert item.published_offset_minutes == 480
    assert item.category_slugs == ("shanghaizhengquanbao",)
    registry = store.load_category_registry()
    assert registry.by_slug["shanghaizhengquanbao"].title == "上海证券报新闻"
    assert store.count_items("shanghaizhengquanbao") == 1
    # three passes over two sources: 2 fetched bodies, then 304s
    assert len(feed_server.requests_to("/seed.rss")) == 3
    assert [r.status for r in feed_server.requests_to("/seed.rss")] == [200, 304, 304]


def test_second_fetch_is_conditional_and_304_parses_nothing(
    store: SqlStore, seed_sources: Settings, feed_server: FeedServer
) -> None:
    ctx = make_context(seed_sources, store)
    run_pass(ctx, ["eastmoney"])
    outcomes, _ = run_pass(ctx, ["eastmoney"])

    first, second = feed_server.requests_to("/seed.rss")
    assert "If-None-Match" not in first.headers
    assert second.headers["If-None-Match"] == feed_server.routes["/seed.rss"].etag
    assert second.headers["If-Modified-Since"] == feed_server.routes["/seed.rss"].last_modified
    assert second.status == 304
    (outcome,) = outcomes
    assert outcome.kind is OutcomeKind.NOT_MODIFIED
    assert (outcome.new_count, outcome.updated_count) == (0, 0)
    log = store.list_fetches("eastmoney")
    assert [row.outcome for row in log] == ["not_modified", "ok"]
    assert log[1].new_count == 1


def test_same_bytes_without_validators_are_not_parsed_again(
    store: SqlStore, seed_sources: Settings, feed_server: FeedServer
) -> None:
    feed_server.routes["/seed.rss"].validators = False
    ctx = make_context(seed_sources, store)
    run_pass(ctx, ["eastmoney"])
    outcomes, _ = run_pass(ctx, ["eastmoney"])
    assert outcomes[0].kind is OutcomeKind.UNCHANGED_BODY
    assert [r.status for r in feed_server.requests_to("/seed.rss")] == [200, 200]


def test_changed_item_is_updated_in_place(
    store: SqlStore, seed_sources: Settings, feed_server: FeedServer, seed: Seed
) -> None:
    ctx = make_context(seed_sources, store)
    run_pass(ctx, ["eastmoney"])
    before = store.find_item(seed.info_code)
    assert before is not None

    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed-updated.rss").read_bytes())
    outcomes, _ = run_pass(ctx, ["eastmoney"])

    assert outcomes[0].updated_count == 1
    assert outcomes[0].new_count == 0
    after = store.find_item(seed.info_code)
    assert after is not None
    assert store.count_items() == 1
    assert after.title == "上海发布网络安全产业三年行动计划（更新）"
    assert after.item_id == before.item_id
    assert after.first_seen_at == before.first_seen_at
    assert after.updated_at >= before.updated_at
    assert after.seq > before.seq
    assert after.update_count == 1


def test_item_from_another_source_under_another_guid_adds_membership_only(
    store: SqlStore, feed_server: FeedServer, seed: Seed
) -> None:
    feed_server.routes["/a.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/b.rss"] = Route((FIXTURES / "seed-other-source.rss").read_bytes())
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻}}
  cnstock: {{title: 中国证券网}}
sources:
  - {{id: a, url: "{feed_server.url("/a.rss")}", category: shanghaizhengquanbao}}
  - {{id: b, url: "{feed_server.url("/b.rss")}", category: cnstock}}
""")
    ctx = make_context(settings, store)
    run_pass(ctx, ["a"])
    outcomes, _ = run_pass(ctx, ["b"])
    assert outcomes[0].new_count == 0
    assert store.count_items() == 1
    item = store.find_item(seed.info_code)
    assert item is not None
    assert item.category_slugs == ("cnstock", "shanghaizhengquanbao")
    # polling both again changes nothing: neither source's version overwrites the other
    feed_server.routes["/a.rss"].validators = feed_server.routes["/b.rss"].validators = False
    again, _ = run_pass(ctx)
    assert all(o.updated_count == 0 and o.new_count == 0 for o in again)


PRECEDENCE_CONFIG = """
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
sources:
{sources}
"""


@pytest.mark.parametrize(
    ("listed", "fetched"),
    [
        (["paper", "mirror"], ["paper", "mirror"]),
        (["paper", "mirror"], ["mirror", "paper"]),
        (["mirror", "paper: 1"], ["paper", "mirror"]),
        (["mirror", "paper: 1"], ["mirror", "paper"]),
    ],
    ids=[
        "listed first, fetched first",
        "listed first, fetched last",
        "higher priority, fetched first",
        "higher priority, fetched last",
    ],
)
def test_the_copy_of_the_source_that_takes_precedence_is_stored_in_any_fetch_order(
    store: SqlStore, feed_server: FeedServer, seed: Seed, listed: list[str], fetched: list[str]
) -> None:
    """The seed from the paper's feed and from a mirror (another guid, ``&from=mirror``
    in its link): the paper's copy is the one stored, whichever came first."""
    feed_server.routes["/paper.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/mirror.rss"] = Route((FIXTURES / "seed-mirror.rss").read_bytes())
    lines = []
    for entry in listed:
        source_id, _, priority = entry.partition(": ")
        url = feed_server.url(f"/{source_id}.rss")
        extra = f", priority: {priority}" if priority else ""
        lines.append(f'  - {{id: {source_id}, url: "{url}", category_from: author{extra}}}')
    settings = parse_settings(PRECEDENCE_CONFIG.format(sources="\n".join(lines)))
    ctx = make_context(settings, store)
    run_pass(ctx, [fetched[0]])
    before = store.find_item(seed.info_code)
    second, _ = run_pass(ctx, [fetched[1]])

    item = store.find_item(seed.info_code)
    assert before is not None
    assert item is not None
    assert store.count_items() == 1
    assert (item.source_id, item.guid, item.link) == ("paper", seed.link, seed.link)
    assert item.content == seed.body_html
    assert item.category_slugs == ("shanghaizhengquanbao",)
    if fetched[0] == "mirror":  # replaced: an update, with a new sequence number
        assert before.link == seed.link + "&from=mirror"
        assert second[0].updated_count == 1
        assert item.seq > before.seq
        assert item.is_update
    else:  # kept: the mirror's copy adds nothing
        assert (second[0].new_count, second[0].updated_count) == (0, 0)
        assert item.seq == before.seq
    # polled again and again, in any order: the stored copy stays the paper's
    feed_server.routes["/paper.rss"].validators = False
    feed_server.routes["/mirror.rss"].validators = False
    for source_id in [*fetched, *reversed(fetched)]:
        run_pass(ctx, [source_id])
    again = store.find_item(seed.info_code)
    assert again is not None
    assert (again.source_id, again.link, again.seq) == ("paper", seed.link, item.seq)


def test_fetch_failure_is_recorded_with_one_line_and_backs_off(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/html"] = Route(
        b"<!DOCTYPE html><html><body>hi</body></html>", content_type="text/html"
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
defaults: {{interval: 10m}}
categories: {{x: {{title: X}}}}
sources:
  - {{id: broken, url: "{feed_server.url("/html")}", category: x}}
  - {{id: gone, url: "{feed_server.url("/missing.xml")}", category: x}}
""")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ctx = make_context(settings, store, now)
    outcomes, _ = run_pass(ctx)
    by_id = {o.source_id: o for o in outcomes}
    assert by_id["broken"].error == "broken: ParseError: an HTML page, not a feed"
    assert by_id["gone"].error == "gone: HTTPStatusError: HTTP 404 Not Found"
    assert by_id["gone"].http_status == 404
    status = {s.source_id: s for s in store.list_source_status()}
    assert status["gone"].consecutive_errors == 1
    run_pass(ctx)
    status = {s.source_id: s for s in store.list_source_status()}
    assert status["gone"].consecutive_errors == 2
    # 2nd consecutive error: 2 x interval, not the plain interval
    assert status["gone"].next_due_at >= now + timedelta(minutes=20)
    assert store.count_items() == 0


def json_api_config(server: FeedServer) -> Settings:
    return parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories: {{}}
sources:
  - id: api
    url: "{server.url("/list.json")}"
    type: json
    items_path: record
    fields: {{id: infoCode, title: title, link: url, published: showtime,
             summary: digest, category_from: mediaName}}
    date_format: "%Y-%m-%d %H:%M:%S"
    timezone: Asia/Shanghai
    content_url: "{server.url("/content/{id}.json")}"
    content_path: data.content
""")


def test_json_api_downloads_each_body_exactly_once(
    store: SqlStore, feed_server: FeedServer, seed: Seed
) -> None:
    records = [
        {
            "infoCode": seed.info_code,
            "title": seed.title,
            "showtime": "2022-01-25 15:24:31",
            "mediaName": seed.media,
            "digest": "摘要",
            "url": seed.link,
        },
        {
            "infoCode": "NW202201252261000001",
            "title": "第二条",
            "showtime": "2022-01-25 16:00:00",
            "mediaName": "证券时报",
            "digest": "",
            "url": None,
        },
    ]
    feed_server.routes["/list.json"] = Route(
        json.dumps({"rc": 1, "record": records}, ensure_ascii=False).encode(),
        content_type="application/json",
        validators=False,
    )
    for code, html in ((seed.info_code, seed.body_html), ("NW202201252261000001", "<p>二</p>")):
        feed_server.routes[f"/content/{code}.json"] = Route(
            json.dumps({"data": {"content": html}}, ensure_ascii=False).encode(),
            content_type="application/json",
            validators=False,
        )
    ctx = make_context(json_api_config(feed_server), store)
    for _ in range(3):
        run_pass(ctx)
    # the list changes (a new record appears): only the new body is fetched
    records.append(
        {
            "infoCode": "NW202201252261000002",
            "title": "第三条",
            "showtime": "2022-01-25 17:00:00",
            "mediaName": "证券时报",
        }
    )
    feed_server.routes["/list.json"].body = json.dumps({"record": records}).encode()
    feed_server.routes["/content/NW202201252261000002.json"] = Route(
        b'{"data": {"content": "<p>3</p>"}}', validators=False
    )
    run_pass(ctx)
    run_pass(ctx)

    assert len(feed_server.requests_to("/list.json")) == 5
    for code in (seed.info_code, "NW202201252261000001", "NW202201252261000002"):
        assert len(feed_server.requests_to(f"/content/{code}.json")) == 1, code
    item = store.find_item(seed.info_code)
    assert item is not None
    assert item.content == seed.body_html
    assert item.published_at == seed.published_utc
    assert item.published_offset_minutes == 480
    assert item.category_slugs == ("shanghaizhengquanbao",)
    assert store.count_items() == 3


def test_json_api_body_that_fails_is_retried_next_poll_not_lost(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/list.json"] = Route(
        b'{"record": [{"infoCode": "NW202201252261000003", "title": "t", "mediaName": "m"}]}',
        content_type="application/json",
    )
    ctx = make_context(json_api_config(feed_server), store)
    outcomes, _ = run_pass(ctx)
    assert outcomes[0].new_count == 0
    assert outcomes[0].error is not None
    assert "NW202201252261000003" in outcomes[0].error
    feed_server.routes["/content/NW202201252261000003.json"] = Route(
        b'{"data": {"content": "<p>ok</p>"}}'
    )
    outcomes, _ = run_pass(ctx)
    assert outcomes[0].new_count == 1
    assert outcomes[0].error is None
    assert len(feed_server.requests_to("/list.json")) == 2
    assert feed_server.requests_to("/list.json")[1].status == 200  # not a 304: re-read


def test_file_sources_and_bundled_samples(tmp_path: Path) -> None:
    """The bundled config works offline: every sample source stores its items."""
    from aggregator.config.settings import load_settings

    settings = load_settings(Path(__file__).parents[2] / "config" / "sources.yaml")
    settings = settings.model_copy(update={"database": f"sqlite:///{tmp_path / 'a.db'}"})
    store = SqlStore(settings.database)
    store.upgrade()
    ctx = make_context(settings, store)
    outcomes, _ = run_pass(ctx)
    assert len(outcomes) == 5  # the enabled samples
    assert all(o.kind is OutcomeKind.OK for o in outcomes), outcomes
    # the HTML list page (type: html): three items, each body its article page's
    listed = [i for i in store.list_items(limit=100) if i.source_id == "cnstock-html"]
    assert len(listed) == 3
    assert all(len(i.content or "") > 300 for i in listed)
    assert store.count_items() >= 20
    assert store.count_items("shanghaizhengquanbao") >= 1
    again, _ = run_pass(ctx)
    assert all(o.kind is OutcomeKind.NOT_MODIFIED for o in again)
    store.close()


@pytest.mark.parametrize("permanent", [301, 308])
def test_permanent_redirect_is_adopted_once_it_repeats_temporary_never(
    store: SqlStore, feed_server: FeedServer, permanent: int
) -> None:
    feed_server.routes["/new.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/old.rss"] = Route(
        status=permanent, validators=False, headers={"Location": feed_server.url("/new.rss")}
    )
    feed_server.routes["/temp.rss"] = Route(
        status=302, validators=False, headers={"Location": feed_server.url("/new.rss")}
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories: {{x: {{title: X}}}}
sources:
  - {{id: moved, url: "{feed_server.url("/old.rss")}", category: x}}
  - {{id: temp, url: "{feed_server.url("/temp.rss")}", category: x}}
""")
    ctx = make_context(settings, store)
    for seen in (1, 2):
        run_pass(ctx)
        state = store.get_source_state("moved")
        assert state.effective_url is None  # not yet: one bad response must not move it
        assert (state.pending_redirect_url, state.pending_redirect_count) == (
            feed_server.url("/new.rss"),
            seen,
        )
    run_pass(ctx)
    assert store.get_source_state("moved").effective_url == feed_server.url("/new.rss")
    run_pass(ctx)
    assert store.get_source_state("temp").effective_url is None
    assert len(feed_server.requests_to("/old.rss")) == 3  # the fourth pass went direct
    assert len(feed_server.requests_to("/temp.rss")) == 4
    assert store.count_items() == 1


def test_a_permanent_redirect_that_stops_is_forgotten(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/new.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/old.rss"] = Route(
        status=301, validators=False, headers={"Location": feed_server.url("/new.rss")}
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories: {{x: {{title: X}}}}
sources:
  - {{id: moved, url: "{feed_server.url("/old.rss")}", category: x}}
""")
    ctx = make_context(settings, store)
    run_pass(ctx)
    run_pass(ctx)
    feed_server.routes["/old.rss"] = Route((FIXTURES / "seed.rss").read_bytes())  # fixed
    run_pass(ctx)
    run_pass(ctx)
    state = store.get_source_state("moved")
    assert (state.effective_url, state.pending_redirect_url, state.pending_redirect_count) == (
        None,
        None,
        0,
    )


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_postpones_the_next_fetch(
    store: SqlStore, feed_server: FeedServer, status: int
) -> None:
    feed_server.routes["/busy"] = Route(
        status=status, validators=False, headers={"Retry-After": "7200"}
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
defaults: {{interval: 5m, jitter_fraction: 0}}
categories: {{x: {{title: X}}}}
sources:
  - {{id: busy, url: "{feed_server.url("/busy")}", category: x}}
""")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    (outcome,), _ = run_pass(make_context(settings, store, now))
    assert outcome.http_status == status
    assert outcome.next_due_at == now + timedelta(hours=2)
    assert store.list_source_status()[0].next_due_at == now + timedelta(hours=2)


# --- the pure steps: the next state of a source, a feed's warnings ---------------------

OLD_DATE = "Thu, 01 Jan 2026 00:00:00 GMT"
NEW_DATE = "Fri, 02 Jan 2026 00:00:00 GMT"
BEFORE = SourceState(
    source_id="s",
    url="http://a.example/feed",
    etag='"old"',
    last_modified=OLD_DATE,
    body_sha256="old-sha",
    consecutive_errors=2,
    last_item_count=5,
    feed_title="Old title",
    gone_count=1,
    last_warning="old warning",
)
ANSWER = HTTPFacts(
    status=200, final_url="http://a.example/feed", etag='"new"', last_modified=NEW_DATE
)
NO_VALIDATORS = HTTPFacts(status=200, final_url="http://a.example/feed")
TO_B = replace(ANSWER, permanent_redirect_url="http://b.example/feed")
KEPT = SourceUpdate(  # BEFORE as it is written back, errors and 410 count reset
    etag='"old"',
    last_modified=OLD_DATE,
    body_sha256="old-sha",
    effective_url=None,
    consecutive_errors=0,
    feed_title="Old title",
    warning="old warning",
)
NEW_VALIDATORS = {"etag": '"new"', "last_modified": NEW_DATE}
PARSED = {"body_sha256": "new-sha", "feed_title": "New title", "warnings": ("w1", "w2")}
PENDING_B = {"pending_redirect_url": "http://b.example/feed", "pending_redirect_count": 1}

NEXT_STATE_CASES = [
    # (changes to BEFORE, kind, what the fetch found, changes to KEPT)
    pytest.param(
        {},
        OutcomeKind.NOT_MODIFIED,
        {"facts": replace(ANSWER, status=304)},
        NEW_VALIDATORS,
        id="304: the answer's validators, no errors, the rest as it was",
    ),
    pytest.param(
        {},
        OutcomeKind.NOT_MODIFIED,
        {"facts": replace(NO_VALIDATORS, status=304)},
        {},
        id="304 without validators: the old ones stay",
    ),
    pytest.param(
        {},
        OutcomeKind.UNCHANGED_BODY,
        {"facts": NO_VALIDATORS, "body_sha256": "old-sha"},
        {},
        id="same bytes: title and warning as they were",
    ),
    pytest.param(
        {},
        OutcomeKind.OK,
        {"facts": ANSWER, **PARSED},
        {
            **NEW_VALIDATORS,
            "body_sha256": "new-sha",
            "feed_title": "New title",
            "warning": "w1; w2",
        },
        id="parsed: new validators, hash, title and warnings",
    ),
    pytest.param(
        {},
        OutcomeKind.OK,
        {"facts": ANSWER, **PARSED, "feed_title": None, "warnings": ()},
        {**NEW_VALIDATORS, "body_sha256": "new-sha", "warning": None},
        id="parsed without a title or warnings: the old title stays, the warning goes",
    ),
    pytest.param(
        {},
        OutcomeKind.OK,
        {"facts": TO_B, **PARSED, "is_content_missing": True},
        {"feed_title": "New title", "warning": "w1; w2", **PENDING_B},
        id="content bodies missing: old validators and hash, parsed again next time",
    ),
    pytest.param(
        {},
        OutcomeKind.NOT_MODIFIED,
        {"facts": TO_B},
        {**NEW_VALIDATORS, **PENDING_B},
        id="a permanent redirect seen once: pending, not adopted",
    ),
    pytest.param(
        {"pending_redirect_url": "http://b.example/feed", "pending_redirect_count": 2},
        OutcomeKind.NOT_MODIFIED,
        {"facts": TO_B},
        {**NEW_VALIDATORS, "effective_url": "http://b.example/feed"},
        id="a permanent redirect seen a third time in a row: adopted",
    ),
    pytest.param(
        PENDING_B,
        OutcomeKind.NOT_MODIFIED,
        {"facts": ANSWER},
        NEW_VALIDATORS,
        id="a pending redirect that stops: forgotten",
    ),
    pytest.param(
        PENDING_B,
        OutcomeKind.ERROR,
        {"status": 500},
        {"consecutive_errors": 3, **PENDING_B},
        id="error: everything as it was, one more error",
    ),
    pytest.param(
        {},
        OutcomeKind.ERROR,
        {"status": None},
        {"consecutive_errors": 3},
        id="error without an answer: the 410 count resets",
    ),
    pytest.param(
        {},
        OutcomeKind.ERROR,
        {"status": 410},
        {"consecutive_errors": 3, "gone_count": 2},
        id="410 Gone: counted, not retired yet",
    ),
    pytest.param(
        {"gone_count": 2},
        OutcomeKind.ERROR,
        {"status": 410},
        {"consecutive_errors": 3, "gone_count": 3, "retired": True},
        id="410 Gone a third time in a row: retired",
    ),
]


@pytest.mark.parametrize(("before", "kind", "found", "changed"), NEXT_STATE_CASES)
def test_next_source_update(
    before: dict[str, Any], kind: OutcomeKind, found: dict[str, Any], changed: dict[str, Any]
) -> None:
    state = replace(BEFORE, **before)
    assert next_source_update(state, kind, **found) == replace(KEPT, **changed)


def test_next_source_update_needs_the_answer_of_a_fetch_that_had_one() -> None:
    with pytest.raises(ValueError, match="facts needed"):
        next_source_update(BEFORE, OutcomeKind.NOT_MODIFIED)


@pytest.mark.parametrize(
    ("parser_warnings", "item_count", "last_item_count", "expected"),
    [
        pytest.param((), 3, 5, (), id="items listed: no warning"),
        pytest.param(("bad date",), 3, None, ("bad date",), id="the parser's warnings"),
        pytest.param(
            ("bad date",),
            0,
            5,
            ("bad date", "feed lists 0 items where it listed 5; nothing was deleted"),
            id="no items where there were some: flagged after the parser's",
        ),
        pytest.param((), 0, None, ("feed lists no items",), id="no items ever"),
    ],
)
def test_feed_warnings(
    parser_warnings: tuple[str, ...],
    item_count: int,
    last_item_count: int | None,
    expected: tuple[str, ...],
) -> None:
    feed = ParsedFeed(
        title=None,
        link=None,
        items=tuple(ParsedItem(title=f"t{n}") for n in range(item_count)),
        version="rss20",
        warnings=parser_warnings,
    )
    assert feed_warnings(feed, last_item_count) == expected


def test_private_addresses_are_refused_unless_the_config_allows_them(
    store: SqlStore, feed_server: FeedServer
) -> None:
    """With the default config a source (or its redirect) cannot reach 127.0.0.1, where
    a database port listens (issue 13); a source's own allow_networks lets that source,
    and only it, through."""
    feed_server.routes["/feed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    url = feed_server.url("/feed.rss")
    settings = parse_settings(f"""
categories: {{x: {{title: X}}}}
sources:
  - {{id: default, url: "{url}", category: x}}
  - {{id: allowed, url: "{url}", category: x, allow_networks: [127.0.0.1]}}
""")
    outcomes, _ = run_pass(make_context(settings, store))
    by_id = {o.source_id: o for o in outcomes}
    assert by_id["default"].kind is OutcomeKind.ERROR
    assert by_id["default"].error == (
        f"default: ConnectError: refused: 127.0.0.1:{feed_server.port}: 127.0.0.1 is not a "
        "public address, and no allow_networks entry covers it (ForbiddenAddressError)"
    )
    assert by_id["allowed"].kind is OutcomeKind.OK, by_id["allowed"].error
    assert len(feed_server.requests_to("/feed.rss")) == 1


def test_a_fallback_charset_is_recorded_on_the_fetch(
    store: SqlStore, feed_server: FeedServer
) -> None:
    """A Latin-1 feed that declares nothing is stored as windows-1252 (not as cp1257's
    "simulaēões"), and the fetch log and the source's status say so (issue 13)."""
    feed_server.routes["/latin.rss"] = Route(
        "<rss version='2.0'><channel><title>t</title><item><title>simulações très</title>"
        "<link>http://l.example/1</link></item></channel></rss>".encode("latin-1"),
        content_type="application/rss+xml",
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories: {{x: {{title: X}}}}
sources:
  - {{id: latin, url: "{feed_server.url("/latin.rss")}", category: x}}
""")
    (outcome,), _ = run_pass(make_context(settings, store))
    warning = "charset: none declared, and the bytes are not UTF-8; read as windows-1252"
    assert outcome.kind is OutcomeKind.OK
    assert outcome.warnings == (warning,)
    assert [item.title for item in store.list_items(category="x", limit=5)] == ["simulações très"]
    (status,) = store.list_source_status()
    assert (status.health, status.last_warning) == ("warning", warning)


def test_the_feed_ttl_sets_the_next_fetch(store: SqlStore, feed_server: FeedServer) -> None:
    """RSS <ttl> is honoured like Cache-Control (issue 13): 120 minutes, where the
    interval is 10, and no Cache-Control header."""
    feed_server.routes["/ttl.rss"] = Route(
        b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
        b"<ttl>120</ttl><item><title>a</title><link>http://t.example/1</link></item>"
        b"</channel></rss>"
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
defaults: {{interval: 10m, jitter_fraction: 0}}
categories: {{x: {{title: X}}}}
sources:
  - {{id: ttl, url: "{feed_server.url("/ttl.rss")}", category: x}}
""")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    (outcome,), _ = run_pass(make_context(settings, store, now))
    assert outcome.kind is OutcomeKind.OK
    assert outcome.next_due_at == now + timedelta(minutes=120)
    assert store.get_source_state("ttl").next_due_at == now + timedelta(minutes=120)
