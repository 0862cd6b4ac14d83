"""The SQL store on real SQLite and real PostgreSQL: items once, seq order, claims and
leases, one transaction per fetch. Migrations are tested in test_migrations.py."""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import QueuePool

from aggregator.errors import SourceNotFoundError, StoreError
from aggregator.model import (
    CategoryRef,
    FetchOutcome,
    Holder,
    IntentKind,
    ItemIntent,
    Media,
    OutcomeKind,
)
from aggregator.store import FetchWrite, HostLimits, SourcePlan, SourceUpdate, WriteCounts
from aggregator.store.batching import GroupCommitter
from aggregator.store.dbapi import Dialect
from aggregator.store.schema import UTCDateTime
from aggregator.store.sql import PAGE_SIZE, READ_CACHE_KIB, WRITE_CACHE_KIB, SqlStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAT = CategoryRef("news", "新闻")
LEASE = timedelta(minutes=2)


def plans(*ids: str) -> list[SourcePlan]:
    return [SourcePlan(i, f"http://x/{i}", True, timedelta(minutes=10), "news") for i in ids]


def intent(
    stable_id: str,
    kind: IntentKind = IntentKind.NEW,
    title: str = "t",
    categories: tuple[CategoryRef, ...] = (CAT,),
) -> ItemIntent:
    return ItemIntent(
        kind=kind,
        stable_id=stable_id,
        title=title,
        link=None,
        guid=None,
        summary=None,
        content="<p>c</p>",
        author=None,
        published_at=NOW,
        published_offset_minutes=480,
        is_published_firm=True,
        is_content_external=False,
        content_sha256="h-" + title,
        categories=categories,
    )


def outcome(source_id: str, kind: OutcomeKind = OutcomeKind.OK) -> FetchOutcome:
    return FetchOutcome(
        source_id=source_id,
        kind=kind,
        started_at=NOW,
        duration_seconds=0.1,
        next_due_at=NOW + timedelta(minutes=10),
        http_status=200,
    )


KEEP = SourceUpdate(
    etag='"e"', last_modified=None, body_sha256=None, effective_url=None, consecutive_errors=0
)


def test_items_are_stored_once_and_seq_grows(store: SqlStore) -> None:
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(outcome("a"), "w", [intent("x"), intent("y")], KEEP)
    first = store.find_item("x")
    assert first is not None
    # "x" again from b: membership only; "z" is new
    store.apply_fetch(
        outcome("b"),
        "w",
        [intent("x", IntentKind.MEMBERSHIP, categories=(CategoryRef("b", "B"),)), intent("z")],
        KEEP,
    )
    assert store.count_items() == 3
    again = store.find_item("x")
    assert again is not None
    assert again.item_id == first.item_id
    assert again.category_slugs == ("b", "news")
    assert again.seq > first.seq  # it joined a category: news there
    store.apply_fetch(outcome("a"), "w", [intent("y", IntentKind.UPDATED, title="t2")], KEEP)
    seqs = [i.seq for i in store.list_items(limit=10)]
    assert len(set(seqs)) == 3
    updated = store.find_item("y")
    assert updated is not None
    assert updated.title == "t2"
    assert updated.seq == max(seqs)


def test_a_new_item_raced_in_by_another_source_becomes_membership(store: SqlStore) -> None:
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(outcome("a"), "w", [intent("x")], KEEP)
    # b decided "new" before a's write committed
    counts = store.apply_fetch(
        outcome("b"), "w", [intent("x", categories=(CategoryRef("b", "B"),))], KEEP
    )
    assert counts.new == 0
    assert store.count_items() == 1
    item = store.find_item("x")
    assert item is not None
    assert item.category_slugs == ("b", "news")


def test_a_new_item_raced_in_by_a_lower_source_is_replaced(store: SqlStore) -> None:
    """The write checks precedence again: a decided NEW its source takes precedence
    over the copy that beat it to the insert with, so it replaces that copy."""
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(outcome("b"), "w", [intent("x", title="b's")], KEEP)
    before = store.find_item("x")
    # a decided "new" before b's write committed
    counts = store.apply_fetch(outcome("a"), "w", [intent("x", title="a's")], KEEP)
    assert (counts.new, counts.updated) == (0, 1)
    item = store.find_item("x")
    assert before is not None
    assert item is not None
    assert (item.source_id, item.title, item.item_id) == ("a", "a's", before.item_id)
    assert item.seq > before.seq


def test_a_copy_replaced_by_a_higher_source_is_not_updated_back(store: SqlStore) -> None:
    """b decided "my copy changed" before a replaced it: the write refuses, a's stays."""
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(outcome("b"), "w", [intent("x", title="b's")], KEEP)
    store.apply_fetch(outcome("a"), "w", [intent("x", IntentKind.UPDATED, title="a's")], KEEP)
    replaced = store.find_item("x")
    counts = store.apply_fetch(
        outcome("b"), "w", [intent("x", IntentKind.UPDATED, title="b's, corrected")], KEEP
    )
    assert counts.updated == 0
    item = store.find_item("x")
    assert replaced is not None
    assert item is not None
    assert (item.source_id, item.title, item.seq) == ("a", "a's", replaced.seq)


def test_two_processes_racing_with_one_item_store_the_higher_sources_copy(
    database_url: str,
) -> None:
    """Two stores (as two processes) write the same new items at once, each having
    decided "new": whichever commits first, every item ends up as a's copy."""
    ids = [f"x{n}" for n in range(20)]
    a_store, b_store = SqlStore(database_url, pool_size=2), SqlStore(database_url, pool_size=2)
    a_store.upgrade()
    a_store.sync_config(plans("a", "b"), [CAT], NOW)
    start = threading.Barrier(2)

    def write(store: SqlStore, source_id: str) -> None:
        start.wait(timeout=10)
        for stable_id in ids:
            store.apply_fetch(outcome(source_id), "w", [intent(stable_id, title=source_id)], KEEP)

    try:
        threads = [
            threading.Thread(target=write, args=(a_store, "a")),
            threading.Thread(target=write, args=(b_store, "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        items = a_store.list_items(limit=100)
        assert len(items) == len(ids)
        assert {(i.source_id, i.title) for i in items} == {("a", "a")}
    finally:
        a_store.close()
        b_store.close()


def holders(store: SqlStore, source_id: str) -> dict[str, Holder]:
    return {sid: k.holder for sid, k in store.find_known_items(source_id, ["x", "y"]).items()}


def test_precedence_follows_priority_then_the_config_order(store: SqlStore) -> None:
    store.sync_config(plans("a", "b", "c"), [CAT], NOW)
    store.apply_fetch(outcome("b"), "w", [intent("x")], KEEP)
    assert holders(store, "a") == {"x": Holder.YIELDING}  # listed before b
    assert holders(store, "b") == {"x": Holder.SELF}
    assert holders(store, "c") == {"x": Holder.PREVAILING}
    # c gets a higher priority: it comes first now, in every process (the database's)
    store.sync_config([*plans("a", "b"), replace(plans("c")[0], priority=1)], [CAT], NOW)
    assert holders(store, "a") == {"x": Holder.YIELDING}
    assert holders(store, "c") == {"x": Holder.YIELDING}
    # b leaves the config: its copies yield to every configured source
    store.sync_config(plans("c", "a"), [CAT], NOW)
    assert holders(store, "a") == {"x": Holder.YIELDING}
    store.apply_fetch(outcome("a"), "w", [intent("x", IntentKind.UPDATED, title="a's")], KEEP)
    assert holders(store, "c") == {"x": Holder.YIELDING}  # listed first now
    assert holders(store, "b") == {"x": Holder.PREVAILING}


def test_apply_fetch_is_one_transaction(store: SqlStore) -> None:
    store.sync_config(plans("a"), [CAT], NOW)
    (claimed,) = store.claim_due_sources(NOW, "w", 5, LEASE)
    broken = replace(intent("bad"), title=None)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises(StoreError, match="database write failed"):
        store.apply_fetch(outcome("a"), "w", [intent("good"), broken], KEEP)
    assert store.count_items() == 0
    assert store.list_fetches("a") == []
    state = store.get_source_state("a")
    assert state.etag is None
    assert state.last_fetch_at is None
    # the lease is still held: nobody else fetches it until it expires
    assert store.claim_due_sources(NOW, "other", 5, LEASE) == []
    assert claimed.source_id == "a"


def test_claims_respect_due_times_and_leases(store: SqlStore) -> None:
    store.sync_config(plans("a", "b", "c"), [CAT], NOW)
    store.set_due_times({"c": NOW + timedelta(hours=1)})
    got = store.claim_due_sources(NOW, "w1", 10, LEASE)
    assert [s.source_id for s in got] == ["a", "b"]
    assert store.claim_due_sources(NOW, "w2", 10, LEASE) == []
    # the lease expires: another worker takes over
    later = NOW + LEASE + timedelta(seconds=1)
    assert [s.source_id for s in store.claim_due_sources(later, "w2", 10, LEASE)] == ["a", "b"]
    # recording a fetch releases only one's own lease
    store.apply_fetch(outcome("a"), "w1", [], KEEP)
    assert store.claim_sources(["a"], later, "w3", LEASE) == []


def test_concurrent_claims_never_hand_out_a_source_twice(store: SqlStore) -> None:
    ids = [f"s{i:03d}" for i in range(60)]
    store.sync_config(plans(*ids), [CAT], NOW)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        barrier.wait()
        mine: list[str] = []
        while batch := store.claim_due_sources(NOW, name, 3, LEASE):
            mine += [s.source_id for s in batch]
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [sid for mine in got.values() for sid in mine]
    assert sorted(everything) == ids  # each exactly once


def test_sync_config_adds_disables_and_resets_on_url_change(store: SqlStore) -> None:
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(outcome("a"), "w", [], KEEP)
    changed = [replace(plans("a")[0], url="http://y/a")]
    store.sync_config(changed, [CAT], NOW)
    status = {s.source_id: s for s in store.list_source_status()}
    assert status["a"].url == "http://y/a"
    assert status["a"].enabled
    assert not status["b"].enabled
    assert store.get_source_state("a").etag is None  # validators were for the old URL
    with pytest.raises(SourceNotFoundError):
        store.get_source_state("nope")


def test_datetimes_come_back_aware_utc(store: SqlStore) -> None:
    store.sync_config(plans("a"), [CAT], NOW)
    store.apply_fetch(outcome("a"), "w", [intent("x")], KEEP)
    item = store.find_item("x")
    assert item is not None
    assert item.published_at == NOW
    assert item.published_at.tzinfo is not None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM counters")).scalar_one() == 1


def test_per_host_limits_hold_across_claimers(store: SqlStore) -> None:
    """Sources of a busy host wait (still due) while others are claimed; the count is of
    live leases, whoever holds them."""
    busy = [SourcePlan(f"a{i}", f"http://busy.example/{i}", True, LEASE, "news") for i in range(6)]
    calm = [SourcePlan(f"b{i}", f"http://calm.example/{i}", True, LEASE, "news") for i in range(2)]
    store.sync_config(busy + calm, [CAT], NOW)
    limits = HostLimits(max_concurrent=2)
    first = store.claim_due_sources(NOW, "w1", 10, LEASE, limits)
    hosts = sorted(s.source_id[0] for s in first)
    assert hosts == ["a", "a", "b", "b"]
    assert store.claim_due_sources(NOW, "w2", 10, LEASE, limits) == []  # busy.example full
    store.release_lease(first[0].source_id, "w1")
    second = store.claim_due_sources(NOW, "w2", 10, LEASE, limits)
    assert [s.source_id[0] for s in second] == ["a"]
    # without limits, everything due is handed out
    assert len(store.claim_due_sources(NOW, "w3", 10, LEASE)) == 4


def test_per_host_rate_counts_recent_fetches(store: SqlStore) -> None:
    store.sync_config(plans("s1", "s2", "s3"), [CAT], NOW)  # all on host "x"
    limits = HostLimits(max_per_minute=2)
    (claimed,) = store.claim_due_sources(NOW, "w", 1, LEASE, limits)
    store.apply_fetch(
        replace(outcome(claimed.source_id), started_at=NOW),
        "w",
        [],
        SourceUpdate(None, None, None, None, 0),
    )
    assert len(store.claim_due_sources(NOW, "w", 5, LEASE, limits)) == 1  # 1 fetched + 1
    later = NOW + timedelta(minutes=2)
    assert len(store.claim_due_sources(later, "w", 5, LEASE, limits)) == 1  # the third


def test_renewed_leases_do_not_expire(store: SqlStore) -> None:
    store.sync_config(plans("s1", "s2"), [CAT], NOW)
    claimed = store.claim_due_sources(NOW, "w1", 5, LEASE)
    assert len(claimed) == 2
    later = NOW + LEASE + timedelta(seconds=1)
    assert store.renew_leases(["s1", "s2"], "w1", later + LEASE) == 2
    taken = store.claim_due_sources(later, "w2", 5, LEASE)
    assert taken == []  # renewed: still w1's
    assert store.renew_leases(["s1"], "w2", later + LEASE) == 0  # not w2's to renew
    expired = store.claim_due_sources(later + LEASE + timedelta(seconds=1), "w2", 5, LEASE)
    assert sorted(s.source_id for s in expired) == ["s1", "s2"]  # w1 stopped renewing


def test_a_category_raced_in_under_another_slug_takes_the_items(database_url: str) -> None:
    """Two processes file the same outlet, spelled "TechWeb" and "Tech Web" (one identity
    key, two slugs), neither having seen the other's category yet: the second write goes
    to the first one's category instead of failing on a missing slug."""
    first, second = SqlStore(database_url), SqlStore(database_url)
    first.upgrade()
    try:
        first.sync_config(plans("s1", "s2"), [CAT], NOW)
        techweb = CategoryRef("techweb", "TechWeb新闻", name="TechWeb")
        spaced = CategoryRef("tech-web", "Tech Web新闻", name="Tech Web")
        first.apply_fetch(outcome("s1"), "w", [intent("a", categories=(techweb,))], KEEP)
        counts = second.apply_fetch(
            outcome("s2"), "w", [intent("b", categories=(spaced, CAT))], KEEP
        )
        assert counts.new == 1
        item = second.find_item("b")
        assert item is not None
        assert item.category_slugs == ("news", "techweb")
        assert first.count_items("techweb") == 2
    finally:
        first.close()
        second.close()


def test_sqlite_reads_keep_small_page_caches_and_writes_a_large_one(tmp_path: Path) -> None:
    """Every pooled connection fills its own SQLite page cache up to its limit: a large
    limit on the read pool multiplied by its size grew a soak run's memory with the
    database. Reads get SQLite's default; the few write connections the large cache.
    Writers keep their savepoints' statement journals in memory (temp_store 2), readers
    keep SQLite's default (0: a big sort may spill to a file)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}", pool_size=8)
    try:
        store.upgrade()
        with store._read() as conn:
            read_cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            read_temp = conn.exec_driver_sql("PRAGMA temp_store").scalar()
        with store._write() as conn:
            write_cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            write_temp = conn.exec_driver_sql("PRAGMA temp_store").scalar()
        assert read_cache == -READ_CACHE_KIB
        assert write_cache == -WRITE_CACHE_KIB
        assert (read_temp, write_temp) == (0, 2)
        assert WRITE_CACHE_KIB > 4 * READ_CACHE_KIB
        assert store.write_engine.pool.size() < store.engine.pool.size()
    finally:
        store.close()


def test_sqlite_writers_take_turns_on_the_lock_file(tmp_path: Path) -> None:
    """A writer waits in the kernel for the writer ahead of it (not in SQLite's sleeping
    busy handler), then goes in at once; the turn is re-entrant within a thread."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first, second = SqlStore(url), SqlStore(url)
    try:
        first.upgrade()
        done: list[float] = []

        def write() -> None:
            second.sync_config(plans("s1"), [CAT], NOW)
            done.append(time.monotonic())

        with first.write_turn(), first.write_turn():  # re-entrant: no deadlock
            waiter = threading.Thread(target=write)
            waiter.start()
            waiter.join(0.5)
            assert waiter.is_alive()
            assert not done
            released = time.monotonic()
        waiter.join(10)
        assert done
        assert done[0] >= released
        assert [s.source_id for s in second.list_source_status()] == ["s1"]
    finally:
        first.close()
        second.close()


def test_writes_go_on_when_the_lock_file_cannot_be_opened(tmp_path: Path) -> None:
    """No lock file (here a directory stands in its place): writers fall back to SQLite's
    own lock, and every write still lands."""
    (tmp_path / "a.db.writer-lock").mkdir()
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first, second = SqlStore(url), SqlStore(url)
    try:
        first.upgrade()
        first.sync_config(plans("a", "b"), [CAT], NOW)
        writers = [
            threading.Thread(
                target=store.apply_fetch,
                args=(outcome(source), "w", [intent(f"{source}{n}") for n in range(50)], KEEP),
            )
            for store, source in ((first, "a"), (second, "b"))
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(30)
        assert second.count_items() == 100
        assert [len(first.list_fetches(s)) for s in ("a", "b")] == [1, 1]
    finally:
        first.close()
        second.close()


def test_open_connections_fills_the_sqlite_pools_up_front(database_url: str) -> None:
    """A long-running process opens its SQLite connections at start, so its descriptor
    count is flat from then on; PostgreSQL connections (server processes) stay on demand."""
    store = SqlStore(database_url, pool_size=6)
    try:
        store.open_connections()
        for engine in {store.engine, store.write_engine}:
            pool = engine.pool
            assert isinstance(pool, QueuePool)
            assert pool.checkedin() == (pool.size() if store.dialect == "sqlite" else 0)
    finally:
        store.close()


def test_source_info_for_some_sources_or_all(store: SqlStore) -> None:
    """A render asks for its items' sources only; an export for every one."""
    store.sync_config(plans("a", "b", "c"), [CAT], NOW)
    assert set(store.list_source_info()) == {"a", "b", "c"}
    assert set(store.list_source_info({"b", "c", "gone"})) == {"b", "c"}
    assert store.list_source_info(set()) == {}
    assert store.list_source_info({"a"})["a"].title == "a"  # no feed title yet: the id


def test_a_failing_write_in_a_group_is_rolled_back_alone(store: SqlStore) -> None:
    """apply_fetches: each fetch in its own savepoint; the failed one leaves nothing,
    the ones before and after it commit."""
    store.sync_config(plans("a", "b", "c"), [CAT], NOW)
    broken = replace(intent("bad"), title=None)  # type: ignore[arg-type]  # NOT NULL
    results = store.apply_fetches(
        [
            (outcome("a"), "w", [intent("a1")], KEEP),
            (outcome("b"), "w", [intent("b1"), broken], KEEP),
            (outcome("c"), "w", [intent("c1")], KEEP),
        ]
    )
    assert [type(r).__name__ for r in results] == ["WriteCounts", "StoreError", "WriteCounts"]
    assert "database write failed" in str(results[1])
    assert store.count_items() == 2
    assert store.find_item("b1") is None
    assert [len(store.list_fetches(s)) for s in ("a", "b", "c")] == [1, 0, 1]
    assert store.get_source_state("b").etag is None
    assert store.get_source_state("c").etag == '"e"'


def test_a_lock_file_that_cannot_be_locked_leaves_writes_to_sqlites_own_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without flock (ENOLCK): writes and group commits go on, taking
    turns on SQLite's lock alone, as when the lock file cannot be created."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("aggregator.store.sql.base.fcntl.flock", no_locks)
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        store.upgrade()
        store.sync_config(plans("a", "b"), [CAT], NOW)
        assert store.apply_fetch(outcome("a"), "w", [intent("a1")], KEEP).new == 1
        committer = GroupCommitter(store)
        assert committer.apply_fetch(outcome("b"), "w", [intent("b1")], KEEP).new == 1
        committer.close()
        assert store.count_items() == 2
    finally:
        store.close()


def test_a_group_commit_gathers_what_arrived_while_it_waited_for_its_turn(
    tmp_path: Path,
) -> None:
    """The group committer takes its batch once its turn to write has come: fetches
    queued while another writer (here another store on the file, as a second process
    would be) held the turn go into the same transaction."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store, other = SqlStore(url), SqlStore(url)
    store.upgrade()
    store.sync_config(plans("a", "b", "c"), [CAT], NOW)
    batches: list[list[str]] = []
    apply_fetches = store.apply_fetches

    def recording(jobs: Sequence[FetchWrite]) -> list[WriteCounts | StoreError]:
        batches.append([job[0].source_id for job in jobs])
        return apply_fetches(jobs)

    store.apply_fetches = recording  # type: ignore[method-assign]
    committer = GroupCommitter(store)
    held, release = threading.Event(), threading.Event()

    def hold_the_turn() -> None:
        with other.write_turn():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_turn)
    holder.start()
    try:
        assert held.wait(5)
        futures = [committer.submit(outcome(s), "w", [intent(s + "1")], KEEP) for s in "abc"]
        time.sleep(0.3)  # the committer has the first write and waits for its turn
        assert batches == []
    finally:
        release.set()
        holder.join(10)
    assert [f.result(10).new for f in futures] == [1, 1, 1]
    committer.close()
    store.close()
    other.close()
    assert batches == [["a", "b", "c"]]


def test_a_write_larger_than_one_statement_stores_every_row(store: SqlStore) -> None:
    """Rows go in as many-row INSERTs of at most ``rows_per_statement`` rows each."""
    store.sync_config(plans("a", "b"), [CAT], NOW)
    count = store.writer.insert_item.rows_per_statement * 2 + 7
    ids = [f"id-{n}" for n in range(count)]
    counts = store.apply_fetch(outcome("a"), "w", [intent(i) for i in ids], KEEP)
    assert counts.new == count
    assert store.count_items() == count
    assert store.count_items("news") == count
    # all of them from another source too: memberships and provenance, no new items
    other = CategoryRef("other", "其他")
    again = store.apply_fetch(
        outcome("b"),
        "w",
        [intent(i, IntentKind.MEMBERSHIP, categories=(other,)) for i in ids],
        KEEP,
    )
    assert (again.new, again.memberships) == (0, count)
    assert store.count_items("other") == count
    known = store.find_known_items("b", ids)
    assert len(known) == count
    assert {k.category_slugs for k in known.values()} == {frozenset({"news", "other"})}
    assert store.find_pruned(ids) == set()


def test_fetch_knowledge_is_the_three_lookups_read_on_one_connection(store: SqlStore) -> None:
    """find_fetch_knowledge: the pruned ids, the stored items among the others seen from
    the source, and the category registry (stale here, so read too), all in one read."""
    other = CategoryRef("other", "其他", name="其他")
    store.sync_config(plans("a", "b"), [CAT], NOW)
    old = replace(intent("old"), published_at=NOW - timedelta(days=30))
    store.apply_fetch(outcome("a"), "w", [intent("mine"), old], KEEP)
    store.apply_fetch(outcome("b"), "w", [intent("theirs", categories=(other,))], KEEP)
    store.prune({"news": NOW - timedelta(days=1)}, None, NOW, NOW - timedelta(days=90), NOW)
    ids = ["mine", "theirs", "old", "fresh"]
    checkouts: list[object] = []
    event.listen(store.engine, "checkout", lambda *args: checkouts.append(args))

    knowledge = store.find_fetch_knowledge("a", ids)

    assert len(checkouts) == 1
    assert knowledge.pruned == frozenset({"old"})
    assert set(knowledge.known) == {"mine", "theirs"}
    assert knowledge.known["mine"].source_sha256 == "h-t"
    assert knowledge.known["theirs"].source_sha256 is None  # stored by another source
    assert knowledge.known["theirs"].category_slugs == frozenset({"other"})
    assert set(knowledge.registry.by_slug) == {"news", "other"}
    assert knowledge.registry.by_key == store.load_category_registry().by_key
    # the same answers as the three separate lookups
    assert knowledge.pruned == store.find_pruned(ids)
    assert knowledge.known == store.find_known_items("a", ["mine", "theirs", "fresh"])


def test_fetch_knowledge_hands_out_the_cached_registry_while_it_is_fresh(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No read of the categories while the registry read a moment ago is fresh (another
    process's new category shows once it is re-read); each fetch gets its own copy."""
    monkeypatch.setattr("aggregator.store.sql.base.REGISTRY_SECONDS", 3600.0)
    store, other = SqlStore(database_url), SqlStore(database_url)
    try:
        store.upgrade()
        store.sync_config(plans("a", "b"), [CAT], NOW)
        store.load_category_registry()
        late = CategoryRef("late", "迟到", name="迟到")
        other.apply_fetch(outcome("b"), "w", [intent("x", categories=(late,))], KEEP)

        knowledge = store.find_fetch_knowledge("a", ["x"])
        assert set(knowledge.registry.by_slug) == {"news"}  # the cached registry
        assert set(knowledge.known) == {"x"}  # items are always read
        knowledge.registry.add(CategoryRef("mine", "我的"), None)
        assert set(store.find_fetch_knowledge("a", []).registry.by_slug) == {"news"}

        store.sync_config(plans("a", "b"), [CAT], NOW)  # forgets the cached registry
        assert set(store.find_fetch_knowledge("a", []).registry.by_slug) == {"news", "late"}
    finally:
        store.close()
        other.close()


def test_a_new_sqlite_file_gets_16_kb_pages_and_an_old_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    old_file = tmp_path / "old.db"
    with sqlite3.connect(old_file) as conn:  # made before: SQLite's default 4 KB pages
        conn.execute("CREATE TABLE t (x)")
    for path, expected in ((tmp_path / "new.db", PAGE_SIZE), (old_file, 4096)):
        store = SqlStore(f"sqlite:///{path}")
        try:
            store.upgrade()
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA page_size").scalar() == expected
        finally:
            store.close()


def test_two_writers_filing_a_new_category_never_deadlock(database_url: str) -> None:
    """A group commit whose second fetch files items under a new category, while another
    writer files the same new category: every item write takes the seq counter first,
    so the second writer waits instead of deadlocking (PostgreSQL aborted one of them
    with DeadlockDetected before)."""
    new = CategoryRef("xinlei", "新类")
    first, second = SqlStore(database_url, pool_size=2), SqlStore(database_url, pool_size=2)
    first.upgrade()
    first.sync_config(plans("a", "b", "c"), [CAT], NOW)
    other_filed_it = threading.Event()
    original = second.writer.ensure_categories

    def second_files_then_signals(raw, refs, now):  # type: ignore[no-untyped-def]
        original(raw, refs, now)
        other_filed_it.set()  # uncommitted; next this writer reserves seqs

    def first_waits_for_the_other(raw, refs, now):  # type: ignore[no-untyped-def]
        if any(ref.slug == new.slug for ref in refs):
            # without the counter taken first, the other writer gets here: wait for it
            other_filed_it.wait(timeout=3)
        first_original(raw, refs, now)

    first_original = first.writer.ensure_categories
    second.writer.ensure_categories = second_files_then_signals  # type: ignore[method-assign]
    first.writer.ensure_categories = first_waits_for_the_other  # type: ignore[method-assign]
    results: list[object] = []
    try:
        group = threading.Thread(
            target=lambda: results.extend(
                first.apply_fetches(
                    [
                        (outcome("a"), "w", [intent("a1")], KEEP),
                        (outcome("c"), "w", [intent("c1", categories=(new,))], KEEP),
                    ]
                )
            )
        )
        group.start()
        time.sleep(0.3)  # the group holds its transaction open, waiting in its second fetch
        results.append(
            second.apply_fetch(outcome("b"), "w", [intent("b1", categories=(new,))], KEEP)
        )
        group.join(30)
    finally:
        first.close()
        second.close()
    assert [type(r).__name__ for r in results] == ["WriteCounts"] * 3, results
    check = SqlStore(database_url)
    try:
        assert check.count_items(new.slug) == 2
        assert check.count_items() == 3
    finally:
        check.close()


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
        ),
    )
)
def test_the_writers_sqlite_dates_are_what_the_utc_column_type_binds(moment: datetime) -> None:
    """The batched writer binds SQLite dates as text itself; they must be exactly what
    UTCDateTime would bind through SQLAlchemy, or reads and range queries would differ."""
    sqlite = create_engine("sqlite://").dialect
    bind = UTCDateTime().dialect_impl(sqlite).bind_processor(sqlite)
    assert bind is not None
    assert Dialect("sqlite").dt(moment) == bind(moment)


def test_adjacent_items_follow_the_page_order_at_any_depth(store: SqlStore) -> None:
    """Previous/next of an item page: the items beside it in its category's page order
    (newest published first, ties by item id), found for the 150th item as for the first,
    and for items sharing one published time."""
    store.sync_config(plans("a"), [CAT], NOW)
    other = CategoryRef("other", "其他")
    writes = [
        replace(intent(f"i{n:03d}"), published_at=NOW - timedelta(minutes=n // 2))  # pairs tie
        for n in range(160)
    ]
    writes.append(replace(intent("elsewhere", categories=(other,)), published_at=NOW))
    store.apply_fetch(outcome("a"), "w", writes, KEEP)
    page_order = store.list_feed_items(("news",), 200)
    assert len(page_order) == 160
    for position in (0, 1, 2, 99, 100, 150, 159):
        item = page_order[position]
        newer, older = store.find_adjacent_items("news", item.item_id)
        assert newer == (page_order[position - 1] if position > 0 else None), position
        assert older == (page_order[position + 1] if position < 159 else None), position
    elsewhere = store.find_item("elsewhere")
    assert elsewhere is not None
    assert store.find_adjacent_items("news", elsewhere.item_id) == (None, None)
    assert store.find_adjacent_items("news", 10**9) == (None, None)


def test_media_are_stored_with_the_item_and_replaced_when_it_is_updated(store: SqlStore) -> None:
    audio = Media("http://cdn.example/1.mp3", "enclosure", "audio/mpeg", 12345, "audio")
    thumb = Media("http://cdn.example/1.jpg", "thumbnail", width=300, height=200)
    store.sync_config(plans("a", "b"), [CAT], NOW)
    store.apply_fetch(
        outcome("a"), "w", [replace(intent("x"), media=(audio, thumb)), intent("y")], KEEP
    )
    stored = store.find_item("x")
    assert stored is not None
    assert stored.media == (audio, thumb)
    assert store.find_item("y").media == ()  # type: ignore[union-attr]
    # a membership from another source leaves the media alone
    store.apply_fetch(
        outcome("b"), "w", [intent("x", IntentKind.MEMBERSHIP, categories=(CAT,))], KEEP
    )
    assert store.find_item("x").media == (audio, thumb)  # type: ignore[union-attr]
    video = Media("http://cdn.example/1.mp4", "enclosure", "video/mp4", duration_seconds=61)
    store.apply_fetch(
        outcome("a"), "w", [replace(intent("x", IntentKind.UPDATED, "t2"), media=(video,))], KEEP
    )
    updated = store.find_item("x")
    assert updated is not None
    assert updated.media == (video,)
    listed = {i.stable_id: i.media for i in store.list_items(limit=5)}  # lists read them too
    assert listed == {"x": (video,), "y": ()}
