"""Crash safety (issue #4): ``aggregator fetch`` SIGKILLed at seeded random moments during
a large ingest from a real HTTP server, on SQLite and on PostgreSQL.

After every kill the database passes its integrity checks, keeps everything committed
before it unchanged (but for a shared item whose copy a source listed before its holder
replaced: docs/design.md), holds nothing twice, has all the items of every source its fetch log
records as fetched (one transaction per source), and leaves nothing behind that stops the
next pass: no live child process, no stale lease. A last pass then runs to completion and
must leave the corpus stored exactly once.

Every run is a fresh ``aggregator fetch --processes 2`` over all sources. A pass claims
every source, but one fetched before answers 304 to its stored validators (only its
fetch-log row and due time are written) and is claimed after the never-fetched ones,
which are still due: claims go by next due time. So each run starts with the work that
is left (sharded over two processes while 100 or more sources were never fetched), and
kills land in the cold ingest while it lasts, later in passes of 304s, which write too.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from aggregator.store.sql import normalize_url
from bench.corpus import atom_document, build_feed_items, rss_document
from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parent.parent
FEEDS, ITEMS_PER_FEED, CORPUS_SEED = 120, 40, 4  # 4,800 item slots, 4,560 distinct items
KILLS = 24
KILL_SEED = 20240628
REQUEST_DELAY_SECONDS = 0.05  # per feed request: a pass takes seconds, not a blink
PASS_TIMEOUT_SECONDS = 120  # the last pass must finish: a hang fails the test


@dataclass(frozen=True)
class Corpus:
    """What the feed server serves: each source's item ids, and the documents."""

    items_of: dict[str, frozenset[str]]  # source id -> stable ids (NW + infoCode)
    documents: dict[str, bytes]  # source id -> RSS 2.0 or Atom 1.0 bytes

    @property
    def stable_ids(self) -> set[str]:
        return set().union(*self.items_of.values())

    @property
    def provenance(self) -> set[tuple[str, str]]:
        return {(sid, source) for source, ids in self.items_of.items() for sid in ids}


def build_corpus() -> Corpus:
    """bench/corpus.py's feeds: Chinese titles, 1-2 KB bodies, infoCode links, and
    every RSS/Atom pair sharing a tenth of its items."""
    items_of: dict[str, frozenset[str]] = {}
    documents: dict[str, bytes] = {}
    for index, items in enumerate(build_feed_items(FEEDS, ITEMS_PER_FEED, CORPUS_SEED)):
        source = f"f{index:03d}"
        render = rss_document if index % 2 == 0 else atom_document
        documents[source] = render(source, items).encode("utf-8")
        items_of[source] = frozenset("NW" + item.info_code for item in items)
    return Corpus(items_of, documents)


@dataclass(frozen=True)
class KillPoint:
    """When to SIGKILL one run: ``seconds`` after it started (start-up, claims, spawning
    shards), ``jitter`` seconds after it first connected to the database (migrations),
    or ``jitter`` seconds after the feed server answered its ``requests``-th request of
    the run (mid-ingest, or late in a pass of 304s)."""

    kind: str  # start | connect | ingest | late
    seconds: float = 0.0
    requests: int = 0
    jitter: float = 0.0

    def __str__(self) -> str:
        if self.kind == "start":
            return f"start+{self.seconds:.2f}s"
        if self.kind == "connect":
            return f"connect+{self.jitter:.2f}s"
        return f"{self.kind}@req{self.requests}+{self.jitter:.2f}s"


def next_kill(rng: random.Random, run: int, unfetched: int) -> KillPoint:
    """Mostly mid-ingest while never-fetched sources remain (a few requests in, so each
    run gets only a little further), then late in passes of 304s; some in start-up."""
    if run == 0:
        return KillPoint("connect", jitter=rng.uniform(0, 0.3))
    if rng.random() < 0.2:
        return KillPoint("start", seconds=rng.uniform(0.05, 2.0))
    if unfetched:
        return KillPoint("ingest", requests=rng.randint(1, 12), jitter=rng.uniform(0, 0.4))
    return KillPoint("late", requests=rng.randint(1, FEEDS - 10), jitter=rng.uniform(0, 0.3))


def write_config(path: Path, server: FeedServer, corpus: Corpus, database_url: str) -> None:
    lines = [
        f"database: {json.dumps(database_url)}",
        "timezone: Asia/Shanghai",
        "allow_networks: [127.0.0.0/8]",
        "defaults: {interval: 30m, timeout_seconds: 10, total_timeout_seconds: 20, workers: 8}",
        "categories: {}",
        "sources:",
    ]
    for source, document in corpus.documents.items():
        server.routes[f"/{source}.xml"] = Route(document, delay_seconds=REQUEST_DELAY_SECONDS)
        url = server.url(f"/{source}.xml")
        lines.append(f"  - {{id: {source}, url: '{url}', category_from: author}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def start_fetch(config: Path, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # a file, not a pipe: a chatty child can never block
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aggregator",
                "--config",
                str(config),
                "fetch",
                "--processes",
                "2",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AGGREGATOR_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group: shards included
        )


def live_group_members(pgid: int) -> list[str]:
    """Processes of group ``pgid`` still running (zombies excluded: not ours to reap)."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited while we looked
        state, _ppid, group = stat.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state != "Z":
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


@contextmanager
def postgres_probe(database_url: str) -> Iterator[Connection | None]:
    """A connection to watch PostgreSQL with; None for SQLite (connecting would create
    the file we are waiting for)."""
    if database_url.startswith("sqlite:"):
        yield None
        return
    engine = create_engine(normalize_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def has_connected(database_url: str, probe: Connection | None) -> bool:
    """Whether a pass has opened the database: the SQLite file exists, or a backend
    other than ``probe``'s is connected to the PostgreSQL database."""
    if probe is None:
        return Path(database_url.removeprefix("sqlite:///")).exists()
    others = probe.exec_driver_sql(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).scalar_one()
    probe.rollback()  # a fresh snapshot for the next look
    return bool(others)


def kill_when(
    proc: subprocess.Popen[bytes],
    point: KillPoint,
    server: FeedServer,
    started: float,
    database_url: str,
) -> bool:
    """SIGKILL ``proc`` (the pass process only, as ``kill -9 PID`` would) at ``point``;
    False when the run finished first."""
    if point.kind == "start":
        deadline = started + point.seconds
    elif point.kind == "connect":
        with postgres_probe(database_url) as probe:
            while proc.poll() is None and not has_connected(database_url, probe):
                time.sleep(0.002)
        deadline = time.monotonic() + point.jitter
    else:
        with server.lock:
            base = len(server.requests)
        while proc.poll() is None:
            with server.lock:
                if len(server.requests) - base >= point.requests:
                    break
            time.sleep(0.005)
        deadline = time.monotonic() + point.jitter
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return True


@contextmanager
def session(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Whatever happens, no process of this run outlives the test."""
    try:
        yield
    finally:
        if proc.poll() is None or live_group_members(proc.pid):  # still our group
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# ---------------------------------------------------------------------- the checks


@dataclass
class Snapshot:
    """What the database holds after a kill, and everything wrong with it."""

    items: dict[str, str]  # stable id -> hash of what a reader sees
    holders: dict[str, str]  # stable id -> the source whose copy is stored
    provenance: set[tuple[str, str]]  # (stable id, source id) from item_sources
    memberships: int
    fetched: set[str]  # sources with an "ok" row in the fetch log
    leased: list[str]
    problems: list[str] = field(default_factory=list)


def _integrity_problems(conn: Connection, dialect: str) -> list[str]:
    if dialect == "sqlite":
        found: list[str] = []
        integrity = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            found.append(f"PRAGMA integrity_check: {integrity[:5]}")
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            found.append(f"PRAGMA foreign_key_check: {broken[:5]}")
        return found
    # PostgreSQL: the server outlives its clients, so its pages cannot tear when one is
    # killed; check the heap and every B-tree anyway when amcheck is installed.
    available = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'"
    ).scalar_one()
    if not available:
        return []
    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS amcheck")
    found = []
    for table in ("items", "item_categories", "item_sources", "sources", "fetches"):
        bad = conn.execute(text("SELECT * FROM verify_heapam(:t)"), {"t": table}).all()
        if bad:
            found.append(f"verify_heapam({table}): {bad[:3]}")
    indexes = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE a.amname = 'btree' AND t.relname IN "
        "('items', 'item_categories', 'item_sources', 'sources', 'categories', 'fetches')"
    ).scalars()
    for index in indexes:
        conn.execute(text("SELECT bt_index_check(CAST(:i AS regclass), true)"), {"i": index})
    return found


def inspect(database_url: str, corpus: Corpus, before: Snapshot | None) -> Snapshot:
    engine = create_engine(normalize_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            if sqlalchemy.inspect(conn).has_table("items"):
                snapshot = _read(conn, corpus)
                snapshot.problems += _integrity_problems(conn, engine.dialect.name)
            else:  # killed before the first migration committed: still an empty database
                snapshot = Snapshot({}, {}, set(), 0, set(), [])
    finally:
        engine.dispose()
    _compare(snapshot, corpus, before)
    return snapshot


def _read(conn: Connection, corpus: Corpus) -> Snapshot:
    problems: list[str] = []
    rows = conn.exec_driver_sql(
        "SELECT item_id, stable_id, seq, title, link, summary, content, author, "
        "published_at, source_id FROM items"
    ).all()
    stable_of = {row.item_id: row.stable_id for row in rows}
    items = {
        row.stable_id: hashlib.sha256(
            json.dumps(
                [row.title, row.link, row.summary, row.content, row.author, str(row.published_at)],
                ensure_ascii=False,
            ).encode("utf-8")
        ).hexdigest()
        for row in rows
    }
    twice = [sid for sid, n in Counter(row.stable_id for row in rows).items() if n > 1]
    if twice:
        problems.append(f"stable ids stored twice: {twice[:5]}")
    seqs = Counter(row.seq for row in rows)
    if len(seqs) != len(rows):
        problems.append(f"seq values used twice: {[s for s, n in seqs.items() if n > 1][:5]}")
    strangers = sorted(set(items) - corpus.stable_ids)
    if strangers:
        problems.append(f"items that are in no feed: {strangers[:5]}")

    slugs = set(conn.exec_driver_sql("SELECT slug FROM categories").scalars())
    members = conn.exec_driver_sql("SELECT item_id, category_slug FROM item_categories").all()
    dangling = [m for m in members if m.item_id not in stable_of or m.category_slug not in slugs]
    if dangling:
        problems.append(f"memberships pointing at nothing: {dangling[:5]}")
    per_item = Counter(m.item_id for m in members)
    if len(set(map(tuple, members))) != len(members):
        problems.append("a membership stored twice")
    # category_from: author, and shared copies have the same author: exactly one each,
    # written in the same transaction as the item
    wrong = [stable_of[i] for i in stable_of if per_item[i] != 1]
    if wrong:
        problems.append(f"items without exactly one category: {wrong[:5]}")

    carried = conn.exec_driver_sql("SELECT item_id, source_id FROM item_sources").all()
    dangling = [c for c in carried if c.item_id not in stable_of]
    if dangling:
        problems.append(f"provenance rows pointing at no item: {dangling[:5]}")
    provenance = {(stable_of[c.item_id], c.source_id) for c in carried if c.item_id in stable_of}
    if len(provenance) != len(carried):
        problems.append("a provenance row stored twice")
    foreign = sorted(provenance - corpus.provenance)
    if foreign:
        problems.append(f"provenance not in the feeds: {foreign[:5]}")
    orphans = set(items) - {sid for sid, _ in provenance}
    if orphans:
        problems.append(f"items no source carried: {sorted(orphans)[:5]}")

    log = conn.exec_driver_sql("SELECT source_id, outcome FROM fetches").all()
    fetched = {row.source_id for row in log if row.outcome == "ok"}
    states = conn.exec_driver_sql(
        "SELECT source_id, body_sha256, lease_owner FROM sources ORDER BY source_id"
    ).all()
    unlogged = [s.source_id for s in states if s.body_sha256 and s.source_id not in fetched]
    if unlogged:
        problems.append(f"validators stored without their fetch-log row: {unlogged[:5]}")
    first_seen = {row.source_id for row in rows}
    if first_seen - fetched:
        problems.append(f"items first seen in an unlogged fetch: {sorted(first_seen - fetched)}")
    leased = [s.source_id for s in states if s.lease_owner]
    holders = {row.stable_id: row.source_id for row in rows}
    return Snapshot(items, holders, provenance, len(members), fetched, leased, problems)


def _compare(now: Snapshot, corpus: Corpus, before: Snapshot | None) -> None:
    """Per-source atomicity, and nothing committed before lost or changed."""
    for source in sorted(now.fetched):
        missing = {(sid, source) for sid in corpus.items_of[source]} - now.provenance
        if missing:
            now.problems.append(
                f"{source} is logged as fetched but lacks {len(missing)} of its items, "
                f"e.g. {sorted(missing)[:3]}"
            )
    partial = sorted({source for _, source in now.provenance} - now.fetched)
    if partial:
        now.problems.append(f"items written for sources with no logged fetch: {partial[:5]}")
    if before is None:
        return
    lost = sorted(set(before.items) - set(now.items))
    if lost:
        now.problems.append(f"{len(lost)} committed items vanished, e.g. {lost[:3]}")
    changed = sorted(s for s in before.items if s in now.items and now.items[s] != before.items[s])
    # the one change allowed: a source listed before the holder (f000 first) replaced the
    # copy of an item both carry (pairs share items, an RSS and an Atom rendering)
    changed = [s for s in changed if not now.holders[s] < before.holders[s]]
    if changed:
        now.problems.append(f"{len(changed)} committed items changed, e.g. {changed[:3]}")
    if before.provenance - now.provenance:
        now.problems.append("committed provenance rows vanished")
    if before.fetched - now.fetched:
        now.problems.append(f"fetch-log rows vanished: {sorted(before.fetched - now.fetched)}")


# ---------------------------------------------------------------------- the test


def assert_whole_pass(log: Path, history: list[str]) -> None:
    """A run that was not killed printed its table: every source fetched, none failed,
    none skipped as busy (a dead process's lease would show here)."""
    output = log.read_text(encoding="utf-8")
    assert "0 source(s) failed" in output, f"{output[-3000:]}\nkills: {history}"
    assert "busy" not in output, f"a stale lease held sources back:\n{output[-3000:]}\n{history}"


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_committed_and_the_next_pass_finishes(
    database_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    corpus = build_corpus()
    config = tmp_path / "crash.yaml"
    write_config(config, feed_server, corpus, database_url)
    rng = random.Random(KILL_SEED)
    history: list[str] = []  # "kill point -> what the database held", for every message
    before: Snapshot | None = None

    for run in range(KILLS):
        unfetched = len(corpus.items_of) - (len(before.fetched) if before else 0)
        point = next_kill(rng, run, unfetched)
        log = tmp_path / f"run{run:02d}.log"
        started = time.monotonic()
        proc = start_fetch(config, database_url, log)
        with session(proc):
            killed = kill_when(proc, point, feed_server, started, database_url)
            assert killed or proc.returncode == 0, (
                f"run {run} ({point}) exited {proc.returncode}; kills so far: {history}\n"
                + log.read_text(encoding="utf-8")[-3000:]
            )
            # the shards must die with their parent: no writes after the kill
            deadline = time.monotonic() + 15
            while live_group_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not live_group_members(proc.pid), (
                f"run {run} ({point}): processes outlived the killed pass: "
                f"{live_group_members(proc.pid)}; kills so far: {history}"
            )
        if not killed:
            assert_whole_pass(log, history)
        snapshot = inspect(database_url, corpus, before)
        history.append(
            f"{point}{'' if killed else ' (finished first)'} -> "
            f"{len(snapshot.items)} items, {len(snapshot.fetched)} sources"
        )
        assert not snapshot.problems, f"after run {run}: {snapshot.problems}; kills: {history}"
        before = snapshot

    kills = sum(1 for h in history if "finished first" not in h)
    assert kills >= 20, f"only {kills} kills landed before their run finished: {history}"

    # the pass after the last kill completes the work: nothing busy, nothing missing
    log = tmp_path / "last.log"
    proc = start_fetch(config, database_url, log)
    with session(proc):
        try:
            proc.wait(PASS_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the last pass hung; kills: {history}")
    assert proc.returncode == 0, f"{log.read_text(encoding='utf-8')[-3000:]}\nkills: {history}"
    assert_whole_pass(log, history)
    final = inspect(database_url, corpus, before)
    assert not final.problems, f"after the last pass: {final.problems}; kills: {history}"
    assert set(final.items) == corpus.stable_ids, history
    assert len(final.items) == FEEDS * ITEMS_PER_FEED - (FEEDS // 2) * (ITEMS_PER_FEED // 10)
    assert final.provenance == corpus.provenance, history
    assert final.memberships == len(corpus.stable_ids), history
    assert final.fetched == set(corpus.items_of), history
    assert final.leased == [], f"leases left held: {final.leased}"
