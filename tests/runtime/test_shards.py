"""A pass over several processes (shards.py): forked children sharing the claimed sources.

The end-to-end case runs the real command in a subprocess (a pass forks only while it is
its process's one thread, and pytest's process has the feed server's threads), against a
real HTTP server, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from aggregator.config.settings import parse_settings
from aggregator.errors import ShardError
from aggregator.ingest.update import Context
from aggregator.model import SourceState
from aggregator.runtime.service import close_context, open_context
from aggregator.runtime.shards import (
    LocalCursor,
    ShardContexts,
    SharedCursor,
    can_fork,
    run_shards,
)
from aggregator.store.sql import SqlStore, normalize_url
from bench.corpus import atom_document, build_feed_items, rss_document
from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parents[2]
FEEDS, ITEMS_PER_FEED = 120, 10  # at least scheduler.SHARD_MIN_SOURCES sources


def _serve_corpus(server: FeedServer, config: Path, database_url: str) -> set[str]:
    """Serve FEEDS feeds (pairs share a tenth of their items); write their config;
    return every distinct stable id."""
    lines = [
        f'database: "{database_url}"',
        "allow_networks: [127.0.0.0/8]",
        "defaults: {interval: 30m, workers: 8}",
        "categories: {}",
        "sources:",
    ]
    stable_ids: set[str] = set()
    for index, items in enumerate(build_feed_items(FEEDS, ITEMS_PER_FEED, seed=7)):
        render = rss_document if index % 2 == 0 else atom_document
        server.routes[f"/f{index}.xml"] = Route(render(f"f{index}", items).encode("utf-8"))
        url = server.url(f"/f{index}.xml")
        lines.append(f"  - {{id: f{index}, url: '{url}', category_from: author}}")
        stable_ids |= {"NW" + item.info_code for item in items}
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return stable_ids


def _fetch(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "aggregator", "--config", str(config)),
            *("--log-level", "info", "fetch", "--processes", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_pass_in_two_processes_stores_every_item_once(
    feed_server: FeedServer, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "sources.yaml"
    stable_ids = _serve_corpus(feed_server, config, database_url)
    cold = _fetch(config)
    assert cold.returncode == 0, cold.stderr
    assert f"pass of {FEEDS} sources in 2 processes" in cold.stderr
    # a shared item stored first from the Atom feed of its pair is then replaced by the
    # RSS one's copy, listed before it (docs/design.md): updates, at most one per item
    summary = re.search(r"(\d+) new, (\d+) updated, 0 source\(s\) failed", cold.stdout)
    assert summary is not None, [line for line in cold.stdout.splitlines() if "rror" in line]
    assert int(summary.group(1)) == len(stable_ids)
    assert int(summary.group(2)) <= FEEDS // 2 * (ITEMS_PER_FEED // 10)
    warm = _fetch(config)  # every source answers 304 now: sharded too
    assert warm.returncode == 0, warm.stderr
    assert f"pass of {FEEDS} sources in 2 processes" in warm.stderr
    assert "0 new, 0 updated, 0 source(s) failed" in warm.stdout
    engine = create_engine(normalize_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            stored = [row[0] for row in conn.execute(text("SELECT stable_id FROM items"))]
            per_source = dict(
                conn.execute(
                    text("SELECT source_id, count(*) FROM fetches GROUP BY source_id")
                ).all()
            )
            leased = conn.execute(
                text("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL")
            ).scalar()
    finally:
        engine.dispose()
    assert sorted(stored) == sorted(stable_ids)  # each once, none missing
    assert per_source == {f"f{i}": 2 for i in range(FEEDS)}  # both passes, every source
    assert leased == 0
    answered = sorted(request.status for request in feed_server.requests)
    assert answered == [200] * FEEDS + [304] * FEEDS  # one request a source a pass


def _exits_in_children(parent: int) -> object:
    def run(ctx: Context, claimed: object, workers: int, on_outcome: object) -> list[object]:
        if os.getpid() != parent:
            os._exit(3)  # a child dying before it reports
        return []

    return run


class _Helper:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> object:
        self.calls.append("start")
        return self

    def stop(self) -> None:
        self.calls.append("stop")


def test_a_child_that_dies_is_reported_after_the_others_finish(tmp_path: Path) -> None:
    settings = parse_settings(
        f"database: sqlite:///{tmp_path}/a.db\nsources:\n"
        "  - {id: a, url: 'http://127.0.0.1:9/a.xml', category: news}\n"
        "categories: {news: {title: News}}\n"
    )
    store = SqlStore(settings.database)
    store.upgrade()
    ctx = Context(settings=settings, store=store, fetcher=None, owner="o")  # type: ignore[arg-type]
    state = SourceState(source_id="a", url="http://127.0.0.1:9/a.xml")
    helper = _Helper()
    try:
        with pytest.raises(ShardError, match=r"a fetch process exited with code 3"):
            run_shards(
                ctx,
                [state, state],
                2,
                2,
                _exits_in_children(os.getpid()),  # type: ignore[arg-type]
                None,
                helper,
                ShardContexts(open_context, close_context),
            )
    finally:
        store.close()
    assert helper.calls == ["start", "stop"]


def test_no_fork_while_another_thread_runs() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not can_fork()
    finally:
        stop.set()
        other.join()


def _take_all(cursor: SharedCursor, conn: Connection) -> None:
    taken = []
    while (state := cursor.take()) is not None:
        taken.append(state.source_id)
    conn.send(taken)
    conn.close()


def test_the_shared_cursor_hands_each_source_to_exactly_one_process() -> None:
    states = [SourceState(source_id=f"s{i}", url=f"http://x/{i}") for i in range(2000)]
    cursor = SharedCursor(states)
    fork = multiprocessing.get_context("fork")
    pipes = [fork.Pipe(duplex=False) for _ in range(3)]
    children = [fork.Process(target=_take_all, args=(cursor, theirs)) for _, theirs in pipes]
    for child in children:
        child.start()
    here = []
    while (state := cursor.take()) is not None:
        here.append(state.source_id)
    lists = [mine.recv() for mine, _ in pipes] + [here]
    for child in children:
        child.join()
    everything = [source_id for taken in lists for source_id in taken]
    assert sorted(everything) == sorted(s.source_id for s in states)  # once each
    assert cursor.take() is None


def test_a_local_cursor_hands_out_each_source_once_across_threads() -> None:
    states = [SourceState(source_id=f"s{i}", url=f"http://x/{i}") for i in range(2000)]
    cursor = LocalCursor(states)
    taken: list[str] = []
    lock = threading.Lock()

    def take_all() -> None:
        while (state := cursor.take()) is not None:
            with lock:
                taken.append(state.source_id)

    threads = [threading.Thread(target=take_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(s.source_id for s in states)
