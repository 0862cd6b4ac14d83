"""Hostile and broken sources (tests/hostile.py) against a real HTTP server, through the
whole path, on SQLite and PostgreSQL: no crash, one clear line per failed fetch, nothing
half-written, other sources unaffected, the schedule backing off as each case deserves,
and the outputs serving the last good items throughout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from starlette.testclient import TestClient

from aggregator.config.settings import Settings, parse_settings
from aggregator.model import FetchOutcome, OutcomeKind, StoredItem
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import drop_postgres_database, fresh_postgres_database
from tests.feedserver import FeedServer, Route, serving
from tests.hostile import CASES, RETRY_AFTER_SECONDS, Case, body
from tests.ingest.test_update import make_context

INTERVAL = timedelta(minutes=10)


def config(urls: dict[str, str]) -> Settings:
    lines = "\n".join(
        f'  - {{id: {name}, url: "{url}", category: c-{name}}}' for name, url in urls.items()
    )
    categories = "\n".join(f"  c-{name}: {{title: {name}}}" for name in urls)
    return parse_settings(f"""
allow_networks: [127.0.0.0/8]
defaults:
  interval: 10m
  timeout_seconds: 1
  total_timeout_seconds: 3
  workers: 12
  jitter_fraction: 0
categories:
{categories}
sources:
{lines}
""")


def items_of(store: SqlStore, case_name: str) -> list[StoredItem]:
    """Each case files into its own category, c-NAME."""
    return store.list_items(category=f"c-{case_name}", limit=100)


def titles(store: SqlStore, case_name: str) -> list[str]:
    return [item.title for item in items_of(store, case_name)]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def corpus_pass(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SqlStore, FeedServer, dict[str, FetchOutcome], datetime]]:
    """Every case as its own source, all fetched in one pass (once per database)."""
    admin = url = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('corpus') / 'aggregator.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        url = fresh_postgres_database(admin)
    store = SqlStore(url, pool_size=14)
    store.upgrade()
    try:
        with serving() as server:
            settings = config({case.name: case.setup(server) for case in CASES})
            started = datetime.now(UTC)
            outcomes, _ = run_pass(make_context(settings, store))
            yield store, server, {o.source_id: o for o in outcomes}, started
    finally:
        store.close()
        if admin is not None:
            drop_postgres_database(admin, url)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_in_one_shared_pass(
    corpus_pass: tuple[SqlStore, FeedServer, dict[str, FetchOutcome], datetime], case: Case
) -> None:
    store, server, outcomes, started = corpus_pass
    outcome = outcomes[case.name]
    status = {s.source_id: s for s in store.list_source_status()}[case.name]
    log = store.list_fetches(case.name, limit=5)
    assert len(log) == 1  # every fetch is recorded, failed or not
    if case.fails:
        assert outcome.kind is OutcomeKind.ERROR, outcome
        assert outcome.error_class == case.error_class, outcome.error
        line = log[0].error or ""
        assert "\n" not in line
        assert line.startswith(f"{case.name}: {case.error_class}: "), line
        assert re.search(case.match, line), line
        if case.status is not None:
            assert log[0].http_status == case.status
        assert status.item_count == 0  # nothing half-written
        assert status.health == "failing"
        wait = outcome.next_due_at - started
        if case.backoff == "retry-after":
            assert wait >= timedelta(seconds=RETRY_AFTER_SECONDS - 5)
        else:
            assert wait >= INTERVAL
    else:
        assert outcome.kind is OutcomeKind.OK, outcome.error
        assert outcome.error is None
        assert status.item_count == case.stored
        if case.match:
            assert re.search(case.match, "\n".join(titles(store, case.name)), re.M)
    assert outcomes["good"].kind is OutcomeKind.OK  # the others were unaffected
    assert server.requests_to("/xxe-target") == []  # no external entity was fetched


def test_corpus_pass_as_a_whole(
    corpus_pass: tuple[SqlStore, FeedServer, dict[str, FetchOutcome], datetime],
) -> None:
    store, _server, outcomes, started = corpus_pass
    assert set(outcomes) == {c.name for c in CASES}
    expected = sum(c.stored or 0 for c in CASES)
    # shared items are stored once: the redirect cases serve good.xml, and after-root
    # is not-wellformed.xml with a tail
    assert store.count_items() == expected - 3 * 3 - 3
    for item in items_of(store, "dates"):
        assert started <= item.published_at <= datetime.now(UTC)  # first-seen, or clamped
    stored = [item for c in CASES if not c.fails for item in items_of(store, c.name)]
    secrets = [i.stable_id for i in stored if "root:" in (i.title + (i.content or ""))]
    assert secrets == []
    assert not [i for i in stored if "SECRET-FROM-XXE" in i.title + (i.content or "")]
    assert not [i for i in stored if "lollol" in i.title]


FAILING = [c for c in CASES if c.fails]


@pytest.mark.parametrize("case", FAILING, ids=[c.name for c in FAILING])
def test_a_source_that_breaks_keeps_its_last_good_items_served(
    store: SqlStore, feed_server: FeedServer, case: Case
) -> None:
    good = Route(body("good.xml"))
    feed_server.routes["/was-good"] = good
    settings = config({"flaky": feed_server.url("/was-good")})
    ctx = make_context(settings, store)
    run_pass(ctx)
    client = TestClient(create_app(settings, store))
    before = client.get("/feeds/c-flaky.xml")
    assert len(feedparser.parse(before.content).entries) == 3

    bad_url = case.setup(feed_server)
    broken = feed_server.routes.get(bad_url.removeprefix(feed_server.url("")))
    if broken is not None and bad_url.startswith(feed_server.url("/")):
        feed_server.routes["/was-good"] = broken
    else:  # a case that is not one route (DNS, TLS, loops): point the source at it
        settings = config({"flaky": bad_url})
        ctx = make_context(settings, store)
    started = datetime.now(UTC)
    (outcome,), _ = run_pass(ctx)
    assert outcome.kind is OutcomeKind.ERROR
    assert store.count_items() == 3
    after = client.get("/feeds/c-flaky.xml", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 304  # nothing changed, nothing lost
    assert client.get("/feeds/c-flaky.xml").content == before.content
    state = store.get_source_state("flaky")
    assert state.consecutive_errors == 1
    if broken is not None:  # same URL: the last good validators are kept for the next try
        assert state.etag is not None
    due = state.next_due_at
    assert due is not None
    assert due - started >= INTERVAL - timedelta(seconds=1)


def test_backoff_doubles_with_consecutive_errors(store: SqlStore, feed_server: FeedServer) -> None:
    feed_server.routes["/down"] = Route(status=500, validators=False)
    ctx = make_context(config({"down": feed_server.url("/down")}), store)
    waits = []
    for _ in range(4):
        started = datetime.now(UTC)
        (outcome,), _ = run_pass(ctx)
        waits.append((outcome.next_due_at - started) / INTERVAL)
    assert [round(w) for w in waits] == [1, 2, 4, 8]


def test_410_retires_the_source_after_three_in_a_row(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/gone"] = Route(body("good.xml"))
    ctx = make_context(config({"gone": feed_server.url("/gone")}), store)
    run_pass(ctx)
    feed_server.routes["/gone"] = Route(status=410, validators=False)
    for _ in range(3):
        run_pass(ctx)
    status = store.list_source_status()[0]
    assert status.health == "retired"
    assert status.retired_at is not None
    assert "retired" in (status.last_error or "")
    assert status.item_count == 3  # nothing deleted
    # the schedule no longer offers it
    later = datetime.now(UTC) + timedelta(days=30)
    assert store.claim_due_sources(later, "someone", 10, timedelta(minutes=1)) == []
    # a fetch asked for by hand brings it back when the feed works again
    feed_server.routes["/gone"] = Route(body("good.xml"))
    store.request_fetch("gone", datetime.now(UTC))
    assert store.list_source_status()[0].health == "failing"  # due again, not retired
    run_pass(ctx)
    assert store.list_source_status()[0].health == "ok"


def test_a_410_that_stops_does_not_retire(store: SqlStore, feed_server: FeedServer) -> None:
    feed_server.routes["/blip"] = Route(status=410, validators=False)
    ctx = make_context(config({"blip": feed_server.url("/blip")}), store)
    run_pass(ctx)
    run_pass(ctx)
    feed_server.routes["/blip"] = Route(body("good.xml"))
    run_pass(ctx)
    feed_server.routes["/blip"] = Route(status=410, validators=False)
    run_pass(ctx)
    run_pass(ctx)
    assert store.get_source_state("blip").retired_at is None


def test_zero_items_where_there_were_some_is_flagged_and_nothing_deleted(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/shrinks"] = Route(body("good.xml"))
    settings = config({"shrinks": feed_server.url("/shrinks")})
    ctx = make_context(settings, store)
    run_pass(ctx)
    feed_server.routes["/shrinks"] = Route(body("zero-items.xml"))
    (outcome,), _ = run_pass(ctx)
    assert outcome.kind is OutcomeKind.OK  # not an error: nothing to back off from
    status = store.list_source_status()[0]
    assert status.health == "warning"
    assert status.last_warning == "feed lists 0 items where it listed 3; nothing was deleted"
    assert store.count_items() == 3
    feed_server.routes["/shrinks"] = Route(body("zero-items.xml") + b" ")  # still empty
    run_pass(ctx)
    assert store.list_source_status()[0].last_warning == status.last_warning
    served = TestClient(create_app(settings, store)).get("/feeds/c-shrinks.xml")
    assert len(feedparser.parse(served.content).entries) == 3
    feed_server.routes["/shrinks"] = Route(body("good.xml") + b"\n")
    run_pass(ctx)
    assert store.list_source_status()[0].health == "ok"
