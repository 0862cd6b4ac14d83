"""The dispatcher in-process, and `aggregator run` as a real process: killed with SIGKILL
mid-schedule and started again, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config.settings import parse_settings
from aggregator.ingest.fetcher import Fetcher
from aggregator.ingest.update import Context
from aggregator.model import FetchOutcome, OutcomeKind
from aggregator.runtime.scheduler import (
    PASS_GC_THRESHOLD,
    Dispatcher,
    _SlotYieldingSink,
    run_pass,
)
from aggregator.store import FetchWrite, SourceUpdate, WriteCounts
from aggregator.store.batching import GroupCommitter
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def config_text(server: FeedServer, count: int, interval: str, db: str) -> str:
    lines = [
        f"database: {db}",
        "allow_networks: [127.0.0.0/8]",
        "defaults: {workers: 4, total_timeout_seconds: 2, "
        "timeout_seconds: 2, jitter_fraction: 0.1}",
        "categories: {news: {title: 新闻}}",
        "sources:",
    ]
    for i in range(count):
        path = f"/feed{i}.xml"
        server.routes[path] = Route((FIXTURES / "rss20.xml").read_bytes())
        lines.append(
            f"  - {{id: s{i:02d}, url: '{server.url(path)}', category: news, interval: {interval}}}"
        )
    return "\n".join(lines) + "\n"


def test_dispatcher_never_fetches_one_source_twice_at_once(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    settings = parse_settings(config_text(feed_server, 3, "1s", "sqlite:///unused"))
    for route in feed_server.routes.values():
        route.delay_seconds = 1.5  # slower than the interval
        route.validators = False
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.upgrade()
    ctx = Context(settings=settings, store=store, fetcher=Fetcher("t"), owner="me")
    dispatcher = Dispatcher(ctx)
    dispatcher.start()
    try:
        assert wait_until(
            lambda: all(len(feed_server.requests_to(f"/feed{i}.xml")) >= 2 for i in range(3)), 20
        )
    finally:
        dispatcher.stop()
    for i in range(3):
        spans = sorted((r.started, r.finished) for r in feed_server.requests_to(f"/feed{i}.xml"))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"feed{i} fetched twice at once"
    assert all(s.last_fetch_at is not None for s in store.list_source_status())
    with store.engine.connect() as conn:
        held = conn.exec_driver_sql("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL")
        assert held.scalar_one() == 0  # stop() released everything
    store.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_run(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # a file, not a pipe: a chatty child can never block
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aggregator",
                "--config",
                str(config),
                "run",
                "--port",
                str(free_port()),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@pytest.mark.slow
def test_killed_mid_schedule_the_schedule_continues_without_burst_or_skip(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    count = 24
    db = tmp_path / "run.db"
    config = tmp_path / "c.yaml"
    config.write_text(config_text(feed_server, count, "4s", f"sqlite:///{db}"), encoding="utf-8")
    paths = [f"/feed{i}.xml" for i in range(count)]

    log = tmp_path / "run.log"
    first = start_run(config, log)
    try:
        assert wait_until(lambda: all(feed_server.requests_to(p) for p in paths), 30), (
            "not every source was fetched by the first process"
        )
        time.sleep(1.3)  # somewhere inside the next interval
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = time.monotonic()
    time.sleep(5)  # down for longer than an interval: every source falls due

    second = start_run(config, log)
    try:
        assert wait_until(
            lambda: all(
                any(r.started > killed_at for r in feed_server.requests_to(p)) for p in paths
            ),
            40,
        ), "a source was skipped after the restart"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    output = log.read_text(encoding="utf-8")
    assert second.returncode == 0, output
    assert "finishing fetches in flight" in output

    firsts = sorted(
        min(r.started for r in feed_server.requests_to(p) if r.started > killed_at) for p in paths
    )
    # no burst: the restart spreads overdue sources over their interval
    within_half_second = sum(1 for t in firsts if t - firsts[0] < 0.5)
    assert within_half_second < count // 2, firsts
    assert firsts[-1] - firsts[0] > 1.0
    # the database is whole and nothing was stored twice
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        items = conn.execute("SELECT count(*), count(DISTINCT stable_id) FROM items").fetchone()
        assert items[0] == items[1] > 0
        held = conn.execute("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL")
        assert held.fetchone() == (0,)  # SIGTERM released the leases


def test_next_due_times_survive_a_restart(feed_server: FeedServer, tmp_path: Path) -> None:
    """The schedule is in the database: a new process reads the stored due times."""
    settings = parse_settings(config_text(feed_server, 2, "1h", "sqlite:///unused"))
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.upgrade()
    ctx = Context(settings=settings, store=store, fetcher=Fetcher("t"), owner="me")
    dispatcher = Dispatcher(ctx)
    dispatcher.start()
    assert wait_until(lambda: all(s.last_fetch_at for s in store.list_source_status()), 15)
    dispatcher.stop()
    due_before = {s.source_id: s.next_due_at for s in store.list_source_status()}
    restarted = Dispatcher(
        Context(settings=settings, store=store, fetcher=Fetcher("t"), owner="me-again")
    )
    restarted.start()
    time.sleep(1.5)
    restarted.stop()
    due_after = {s.source_id: s.next_due_at for s in store.list_source_status()}
    assert due_after == due_before  # not fetched again: they were not due
    assert all(d > datetime.now(UTC) for d in due_after.values())
    assert len(feed_server.requests_to("/feed0.xml")) == 1
    store.close()


class _SlowStore:
    """A store whose group commit waits until the test lets it through (a fake: what is
    tested is the pass's thread bookkeeping, not a database)."""

    def __init__(self) -> None:
        self.go = threading.Event()

    def write_turn(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def apply_fetches(self, jobs: Sequence[FetchWrite]) -> list[WriteCounts]:
        self.go.wait(10)
        return [WriteCounts(new=len(job[2]), updated=0, memberships=0) for job in jobs]


def test_a_thread_waiting_for_its_commit_lends_its_slot_to_another() -> None:
    store = _SlowStore()
    committer = GroupCommitter(store)  # type: ignore[arg-type]
    slots = threading.Semaphore(1)
    sink = _SlotYieldingSink(committer, slots)
    outcome = FetchOutcome(
        source_id="a",
        kind=OutcomeKind.OK,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_seconds=0.1,
        next_due_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    counts: list[WriteCounts] = []

    def fetch_and_record() -> None:
        with slots:
            update = SourceUpdate(
                etag=None,
                last_modified=None,
                body_sha256=None,
                effective_url=None,
                consecutive_errors=0,
            )
            counts.append(sink.apply_fetch(outcome, "owner", (), update))

    thread = threading.Thread(target=fetch_and_record)
    thread.start()
    try:
        # the only slot comes free while the write waits for its commit...
        assert slots.acquire(timeout=5)
        assert counts == []
        slots.release()
    finally:
        store.go.set()
        thread.join(5)
        committer.close()
    # ...and the thread takes it back before it returns with the committed counts
    assert counts == [WriteCounts(new=0, updated=0, memberships=0)]
    assert slots.acquire(timeout=1)


class _CountingSemaphore(threading.Semaphore):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.releases = 0

    def release(self, n: int = 1) -> None:
        self.releases += n
        super().release(n)


@pytest.mark.parametrize(
    "kind", [OutcomeKind.NOT_MODIFIED, OutcomeKind.UNCHANGED_BODY], ids=["304", "same bytes"]
)
def test_a_fetch_that_found_the_feed_unchanged_is_not_waited_for(kind: OutcomeKind) -> None:
    """A 304 or the same bytes go through the same sink call as every fetch, but return
    zero counts at once, keeping the slot; the write is committed later all the same."""
    store = _SlowStore()
    committed: list[FetchWrite] = []
    apply_fetches = store.apply_fetches

    def recording(jobs: Sequence[FetchWrite]) -> list[WriteCounts]:
        results = apply_fetches(jobs)
        committed.extend(jobs)
        return results

    store.apply_fetches = recording  # type: ignore[method-assign]
    committer = GroupCommitter(store)  # type: ignore[arg-type]
    slots = _CountingSemaphore(1)
    sink = _SlotYieldingSink(committer, slots)
    outcome = FetchOutcome(
        source_id="a",
        kind=kind,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_seconds=0.1,
        next_due_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    update = SourceUpdate(
        etag=None, last_modified=None, body_sha256=None, effective_url=None, consecutive_errors=0
    )
    try:
        with slots:
            counts = sink.apply_fetch(outcome, "owner", (), update)
            assert committed == []  # returned while the store still holds the commit
            assert slots.releases == 0  # and the slot was never given away
        assert counts == WriteCounts(new=0, updated=0, memberships=0)
    finally:
        store.go.set()
        committer.close()
    assert [job[0] for job in committed] == [outcome]


def test_a_pass_tunes_the_collector_and_puts_it_back(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """During a pass what was loaded before it is frozen and young collections are rarer;
    afterwards the collector is as it was, and nothing stays frozen."""
    settings = parse_settings(config_text(feed_server, 3, "10m", f"sqlite:///{tmp_path}/a.db"))
    store = SqlStore(settings.database)
    store.upgrade()
    ctx = Context(settings=settings, store=store, fetcher=Fetcher("t"), owner="test-owner")
    before = gc.get_threshold()
    during: list[tuple[tuple[int, int, int], int]] = []
    try:
        outcomes, _ = run_pass(
            ctx, on_outcome=lambda _: during.append((gc.get_threshold(), gc.get_freeze_count()))
        )
    finally:
        store.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.OK] * 3
    assert len(during) == 3
    for threshold, frozen in during:
        assert threshold == (PASS_GC_THRESHOLD, *before[1:])
        assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
