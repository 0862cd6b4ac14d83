"""item_tickers: written with the item in the same transaction, read by ticker in the
ticker feed's order, rewritten when the item changes, gone when the item is pruned
(SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aggregator.model import CategoryRef, IntentKind
from aggregator.store.sql import SqlStore
from tests.store.test_store import CAT, KEEP, NOW, intent, outcome, plans

MOUTAI = "600519.SH"


def test_tickers_are_stored_and_read_by_ticker(store: SqlStore) -> None:
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(
        outcome("a"),
        "w",
        [
            replace(intent("old"), tickers=(MOUTAI,), published_at=NOW - timedelta(hours=1)),
            replace(intent("new"), tickers=("000858.SZ", MOUTAI)),
            replace(intent("other"), tickers=("000858.SZ",)),
            intent("none"),
        ],
        KEEP,
    )
    found = store.list_feed_items(None, limit=10, ticker=MOUTAI)
    assert [i.stable_id for i in found] == ["new", "old"]  # newest published first
    assert found[0].tickers == ("000858.SZ", MOUTAI)
    assert store.list_feed_items(None, limit=10, ticker="00700.HK") == []
    assert [i.stable_id for i in store.list_feed_items(["news"], 10, ticker=MOUTAI)] == [
        "new",
        "old",
    ]
    assert store.list_feed_items(["elsewhere"], 10, ticker=MOUTAI) == []
    # a membership from another source leaves the tickers alone
    store.apply_fetch(
        outcome("b"),
        "w",
        [replace(intent("old", IntentKind.MEMBERSHIP, categories=(CategoryRef("b", "B"),)))],
        KEEP,
    )
    assert [i.stable_id for i in store.list_feed_items(None, 10, ticker=MOUTAI)] == ["new", "old"]
    # a changed item's tickers are its new text's
    store.apply_fetch(
        outcome("a"),
        "w",
        [replace(intent("old", IntentKind.UPDATED, title="t2"), tickers=("00700.HK",))],
        KEEP,
    )
    assert [i.stable_id for i in store.list_feed_items(None, 10, ticker=MOUTAI)] == ["new"]
    assert [i.stable_id for i in store.list_feed_items(None, 10, ticker="00700.HK")] == ["old"]


def test_pruned_items_take_their_tickers(store: SqlStore) -> None:
    store.sync_config(plans("a"), [CAT], NOW)
    old = replace(intent("old"), tickers=(MOUTAI,), published_at=NOW - timedelta(days=30))
    store.apply_fetch(outcome("a"), "w", [old, replace(intent("new"), tickers=(MOUTAI,))], KEEP)
    store.prune({}, NOW - timedelta(days=7), NOW, NOW, NOW)
    assert [i.stable_id for i in store.list_feed_items(None, 10, ticker=MOUTAI)] == ["new"]


def test_an_update_without_its_body_keeps_the_codes_found_in_it(store: SqlStore) -> None:
    store.sync_config(plans("a"), [CAT], NOW)
    store.apply_fetch(outcome("a"), "w", [replace(intent("x"), tickers=(MOUTAI,))], KEEP)
    listing = replace(
        intent("x", IntentKind.UPDATED, title="t2"),
        content=None,
        is_content_external=True,
        tickers=("00700.HK",),
    )
    store.apply_fetch(outcome("a"), "w", [listing], KEEP)
    (item,) = store.list_feed_items(None, 10, ticker=MOUTAI)
    assert item.tickers == ("00700.HK", MOUTAI)
