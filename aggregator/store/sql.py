"""The SQLAlchemy adapter of the ``Store`` interface: SQLite (WAL) or PostgreSQL.

SQLite: WAL mode, ``synchronous=NORMAL``, foreign keys on, a 30 s busy timeout, and write
transactions opened with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on a
lock upgrade. PostgreSQL: psycopg 3; claims use ``FOR UPDATE SKIP LOCKED``.

Sequence numbers come from one counter row updated inside each write transaction. On
PostgreSQL the row lock is held until commit, so seq order is commit order: a consumer
paging by seq can never see 12 before a slower transaction commits 11. (A database
sequence would hand out numbers in start order instead.)
"""

from __future__ import annotations

import fcntl
import importlib
import os
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from aggregator.errors import ItemNotFoundError, SourceNotFoundError, StoreError
from aggregator.model import (
    CategoryInfo,
    CategoryRef,
    FetchOutcome,
    ItemIntent,
    KnownItem,
    SourceInfo,
    SourceState,
    StoredItem,
)
from aggregator.slug import CategoryRegistry, identity_key
from aggregator.store import (
    FetchRecord,
    FetchWrite,
    HostLimits,
    PruneCounts,
    SourcePlan,
    SourceStatus,
    SourceUpdate,
    WriteCounts,
)
from aggregator.store.schema import (
    categories,
    counters,
    fetches,
    item_categories,
    item_sources,
    items,
    jobs,
    pruned_items,
    sources,
)
from aggregator.store.writes import SEQ_COUNTER, Dialect, ItemWriter, Raw, chunks, host_of

_CLAIM_LOCK_KEY = 7_270_315_002  # pg_advisory_xact_lock for claims under per-host limits
REGISTRY_SECONDS = 5.0


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# SQLite page cache per connection, in KiB. Reads get SQLite's default: the OS page
# cache holds the file anyway, and every pooled connection fills its own cache up to the
# limit, so a large one multiplies (18 connections x 32 MB grew a soak run's resident set
# by the database's size per connection). The few write connections get a large one: a
# cold pass writes ~100 MB, and the id indexes stay in memory between transactions.
READ_CACHE_KIB = 2000
WRITE_CACHE_KIB = 32768
WRITE_POOL_SIZE = 2
PAGE_SIZE = 16384


def make_engine(
    url: str,
    pool_size: int = 10,
    cache_kib: int = READ_CACHE_KIB,
    max_overflow: int = 4,
    journals_in_memory: bool = False,
) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # statements are cached per text, and a many-row INSERT has a text per row count
        connect_args={"timeout": 30, "check_same_thread": False, "cached_statements": 512},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        # 16 KB pages for a new file (an existing one keeps its size: a no-op there). Items
        # of 1-3 KB fill 4 KB pages badly; a cold pass of 47,500 items wrote a 117 MB
        # file instead of 132 MB, with a quarter of the WAL frames, 5-10% faster.
        cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # A burst of article text (a cold pass writes ~100 MB) checkpoints less often with a
        # 16 MB WAL threshold.
        cursor.execute("PRAGMA wal_autocheckpoint=4000")
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        if journals_in_memory:
            # Each source of a group commit writes inside a savepoint, and SQLite copies
            # every page it changes there to a statement journal, a temp file past 64 KiB:
            # a cold pass made 118,000 pwrite calls (970 MB) to journals it then deleted,
            # against 35,000 to the WAL. In memory they cost a copy each (a few MB at a
            # time: the pages one source's write touches) and no system call. Sorts and
            # temp tables of these connections stay in memory too; they only write.
            cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get("aggregator_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


class SqlStore:
    """See ``aggregator.store.Store`` for what each method guarantees."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        try:
            self.engine = make_engine(self.url, pool_size)
            # Writes on SQLite take turns anyway (one writer at a time): a small pool of
            # their own with a large page cache; overflow up to the readers' capacity so a
            # burst of writers queues on SQLite's lock, not on the pool.
            self.write_engine = (
                make_engine(
                    self.url,
                    WRITE_POOL_SIZE,
                    cache_kib=WRITE_CACHE_KIB,
                    max_overflow=pool_size + 4,
                    journals_in_memory=True,
                )
                if self.engine.dialect.name == "sqlite"
                else self.engine
            )
        except (SQLAlchemyError, ImportError, ValueError) as e:
            raise StoreError(f"cannot open database {_redact(url)}: {e}") from e
        self.dialect = self.engine.dialect.name
        # the dialect's INSERT (for ON CONFLICT), imported for the one in use only: the
        # PostgreSQL dialect package costs a command on SQLite 40 ms of start-up
        self._insert = importlib.import_module(f"sqlalchemy.dialects.{self.dialect}").insert
        self._upgrade_lock = threading.Lock()
        self.writer = ItemWriter(Dialect(self.dialect))
        database = self.engine.url.database
        self._sqlite_files: tuple[str, str] | None = (
            (database, database + "-wal")
            if self.dialect == "sqlite" and database and database != ":memory:"
            else None
        )
        # The batched writer uses the DB-API cursor directly: its errors are the driver's.
        self._db_errors: tuple[type[Exception], ...] = (
            SQLAlchemyError,
            self.engine.dialect.loaded_dbapi.Error,
        )
        # The category registry changes rarely; re-read at most every few seconds, and at
        # once after this process added a category.
        self._registry: CategoryRegistry | None = None
        self._registry_loaded_at: float | None = None
        self._known_slugs: set[str] = set()
        self._turn = threading.local()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def write_turn(self) -> Iterator[None]:
        """On an SQLite file, wait for this machine's writers' turn on a lock file first.

        SQLite lets one writer in at a time and makes the others poll: its busy handler
        sleeps 1, 2, 5 ... 100 ms between tries, so a waiting writer oversleeps the
        release while the holder starts its next transaction at once. Two processes of a
        pass spent 40% of their writer's time there, and their fetch threads waited on
        it. ``flock`` queues the waiters in the kernel and wakes one as soon as the lock
        is free; the kernel drops it with a killed process. Re-entrant per thread.
        """
        if self._sqlite_files is None or getattr(self._turn, "held", False):
            yield
            return
        try:
            fd = os.open(self._sqlite_files[0] + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a folder we may not create files in: SQLite's own lock still holds
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL
            locked = True
        except OSError:  # no locks on this file system: SQLite's own lock still holds
            locked = False
        try:
            self._turn.held = locked
            yield
        finally:
            self._turn.held = False
            os.close(fd)  # closing the descriptor releases the lock

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.write_turn(), self.write_engine.connect() as conn:
                conn = conn.execution_options(aggregator_write=True)
                with conn.begin():
                    yield conn
        except self._db_errors as e:
            raise StoreError(f"database write failed: {type(e).__name__}: {_first_line(e)}") from e

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"database read failed: {type(e).__name__}: {_first_line(e)}") from e

    @contextmanager
    def _read_raw(self) -> Iterator[Raw]:
        """A read transaction on a pooled DB-API connection, for the per-fetch lookups:
        SQLAlchemy's constructs, connection and transaction objects cost more than the
        queries (1.1 ms a fetch for two reads, 0.1 ms of it in the database)."""
        try:
            dbapi = self.engine.raw_connection()
            try:
                cursor = dbapi.cursor()
                if self.dialect == "sqlite":  # autocommit mode (make_engine): open one
                    cursor.execute("BEGIN")  # PostgreSQL's driver opens it by itself
                yield Raw(cursor=cursor)
            finally:
                dbapi.close()  # back to the pool, which rolls the read transaction back
        except self._db_errors as e:
            raise StoreError(f"database read failed: {type(e).__name__}: {_first_line(e)}") from e

    def upgrade(self) -> None:
        from aggregator.store.migrations import upgrade_to_head

        with self._upgrade_lock:
            try:
                upgrade_to_head(self.engine)
            except SQLAlchemyError as e:
                raise StoreError(f"migration failed: {_first_line(e)}") from e

    def open_connections(self) -> None:
        # SQLite only: a connection is two file descriptors and a few pages of cache. On
        # PostgreSQL each one is a server process, opened when a peak needs it.
        if self.dialect != "sqlite":
            return
        for engine in {self.engine, self.write_engine}:
            pool = engine.pool
            held = [
                engine.connect() for _ in range(pool.size() if isinstance(pool, QueuePool) else 0)
            ]
            for conn in held:
                conn.close()  # back to the pool, which keeps it open

    def close(self) -> None:
        self.release_connections()

    def release_connections(self) -> None:
        # dispose() closes what the pool holds and starts an empty pool in its place
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()

    # ------------------------------------------------------------------ configuration

    def sync_config(
        self, plans: Sequence[SourcePlan], categories_: Iterable[CategoryRef], now: datetime
    ) -> None:
        self._registry_loaded_at = None
        with self._write() as conn:
            shown = {
                row.slug: (row.title, row.description)
                for row in conn.execute(
                    select(categories.c.slug, categories.c.title, categories.c.description)
                )
            }
            for ref in categories_:
                row = {
                    "slug": ref.slug,
                    "title": ref.title,
                    "description": ref.description,
                    "name": ref.name,
                    "identity_key": identity_key(ref.name) if ref.name else None,
                    "origin": "config",
                    "created_at": now,
                }
                stmt = self._insert(categories).values(row)
                retitled = ref.slug in shown and shown[ref.slug] != (ref.title, ref.description)
                changes: dict[str, Any] = {
                    k: stmt.excluded[k] for k in ("title", "description", "origin")
                }
                if retitled:
                    # a new stamp: every cached copy and ETag of its feeds is now stale
                    changes["last_seq"] = self._next_seq(conn)
                conn.execute(stmt.on_conflict_do_update(index_elements=["slug"], set_=changes))
            existing = {
                row.source_id: row
                for row in conn.execute(
                    select(
                        sources.c.source_id,
                        sources.c.url,
                        sources.c.enabled,
                        sources.c.category,
                        sources.c.interval_seconds,
                        sources.c.next_due_at,
                        sources.c.last_fetch_at,
                    )
                )
            }
            configured = {plan.source_id for plan in plans}
            added = [
                {
                    "source_id": plan.source_id,
                    "url": plan.url,
                    "enabled": plan.enabled,
                    "category": plan.category,
                    "next_due_at": now,
                    "consecutive_errors": 0,
                    "created_at": now,
                    "interval_seconds": int(plan.interval.total_seconds()),
                    "host": host_of(plan.url),
                }
                for plan in plans
                if plan.source_id not in existing
            ]
            if added:  # one executemany: a statement per new source took 0.2 s for 1,000
                conn.execute(sources.insert(), added)
            for plan in plans:
                known = existing.get(plan.source_id)
                if known is None:
                    continue
                values: dict[str, Any] = {}
                seconds = int(plan.interval.total_seconds())
                if known.interval_seconds != seconds:
                    values["interval_seconds"] = seconds
                    if known.interval_seconds is not None and seconds < known.interval_seconds:
                        # a shorter interval applies now, not after the old one runs out
                        sooner = (known.last_fetch_at or now) + plan.interval
                        values["next_due_at"] = max(now, min(known.next_due_at, sooner))
                if (known.enabled, known.category) != (plan.enabled, plan.category):
                    values |= {"enabled": plan.enabled, "category": plan.category}
                if known.url != plan.url:
                    # ops changed the URL: forget validators and any adopted redirect
                    values |= {
                        "url": plan.url,
                        "effective_url": None,
                        "etag": None,
                        "last_modified": None,
                        "body_sha256": None,
                        "next_due_at": now,
                        "host": host_of(plan.url),
                        "pending_redirect_url": None,
                        "pending_redirect_count": 0,
                        "gone_count": 0,
                        "retired_at": None,
                    }
                if values:  # only what changed: a restart with 10,000 sources writes nothing
                    conn.execute(
                        update(sources).where(sources.c.source_id == plan.source_id).values(values)
                    )
            gone = {sid for sid, row in existing.items() if row.enabled} - configured
            for chunk in chunks(sorted(gone)):
                conn.execute(
                    update(sources).where(sources.c.source_id.in_(chunk)).values(enabled=False)
                )

    @staticmethod
    def _next_seq(conn: Connection) -> int:
        return int(
            conn.execute(
                update(counters)
                .where(counters.c.name == SEQ_COUNTER)
                .values(value=counters.c.value + 1)
                .returning(counters.c.value)
            ).scalar_one()
        )

    def load_category_registry(self) -> CategoryRegistry:
        loaded = self._registry_loaded_at
        if (
            self._registry is not None
            and loaded is not None
            and (time.monotonic() - loaded < REGISTRY_SECONDS)
        ):
            return self._registry.copy()
        registry = CategoryRegistry()
        with self._read() as conn:
            for row in conn.execute(select(categories)):
                ref = CategoryRef(row.slug, row.title, row.description, row.name)
                registry.add(ref, row.identity_key if row.origin == "derived" else None)
                if row.origin == "config" and row.identity_key:
                    registry.by_key.setdefault(row.identity_key, row.slug)
        self._registry, self._registry_loaded_at = registry, time.monotonic()
        self._known_slugs = set(registry.by_slug)
        return registry.copy()

    # ------------------------------------------------------------------ schedule

    def _claim(
        self,
        conn: Connection,
        where: Any,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int | None,
    ) -> list[SourceState]:
        free = or_(sources.c.lease_until.is_(None), sources.c.lease_until < now)
        pick = (
            select(sources.c.source_id)
            .where(sources.c.enabled.is_(True), free, where)
            .order_by(sources.c.next_due_at, sources.c.source_id)
            .with_for_update(skip_locked=True)
        )
        if limit is not None:
            pick = pick.limit(limit)
        return self._lease(conn, [row[0] for row in conn.execute(pick)], now, owner, lease)

    @staticmethod
    def _lease(
        conn: Connection, chosen: Sequence[str], now: datetime, owner: str, lease: timedelta
    ) -> list[SourceState]:
        if not chosen:
            return []
        rows = conn.execute(
            update(sources)
            .where(sources.c.source_id.in_(chosen))
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(*sources.c)
        ).all()
        return sorted((_state(row) for row in rows), key=lambda s: (s.next_due_at, s.source_id))

    def claim_due_sources(
        self,
        now: datetime,
        owner: str,
        limit: int,
        lease: timedelta,
        hosts: HostLimits = HostLimits(),  # noqa: B008 (frozen)
    ) -> list[SourceState]:
        if limit <= 0:
            return []
        # retired sources (repeated 410 Gone) are fetched only by hand (claim_sources)
        due = and_(sources.c.next_due_at <= now, sources.c.retired_at.is_(None))
        with self._write() as conn:
            if not hosts.active:
                return self._claim(conn, due, now, owner, lease, limit)
            return self._claim_politely(conn, due, now, owner, lease, limit, hosts)

    def _claim_politely(
        self,
        conn: Connection,
        due: Any,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int,
        hosts: HostLimits,
    ) -> list[SourceState]:
        """Claims that keep each host under its limits, counted over the whole cluster:
        live leases are its fetches in flight, and the fetch log plus those leases its
        fetches of the last minute. Counting then claiming must not interleave between
        processes, so on PostgreSQL the claim takes a transaction-scoped advisory lock
        (SQLite's BEGIN IMMEDIATE already serializes writers)."""
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK_KEY)))
        free = or_(sources.c.lease_until.is_(None), sources.c.lease_until < now)
        candidates = conn.execute(
            select(sources.c.source_id, sources.c.host)
            .where(sources.c.enabled.is_(True), free, due)
            .order_by(sources.c.next_due_at, sources.c.source_id)
            .limit(limit * 4 + 32)  # room to pass over sources of hosts at their limit
            .with_for_update(skip_locked=True)
        ).all()
        names = sorted({row.host for row in candidates if row.host})
        in_flight: dict[str, int] = dict.fromkeys(names, 0)
        recent: dict[str, int] = dict.fromkeys(names, 0)
        for chunk in chunks(names):
            for host, count in conn.execute(
                select(sources.c.host, func.count())
                .where(sources.c.host.in_(chunk), sources.c.lease_until > now)
                .group_by(sources.c.host)
            ):
                in_flight[host] = int(count)
            if hosts.max_per_minute is not None:
                for host, count in conn.execute(
                    select(sources.c.host, func.count())
                    .select_from(fetches.join(sources, fetches.c.source_id == sources.c.source_id))
                    .where(
                        sources.c.host.in_(chunk),
                        fetches.c.started_at >= now - timedelta(minutes=1),
                    )
                    .group_by(sources.c.host)
                ):
                    recent[host] = int(count)
        chosen: list[str] = []
        for row in candidates:
            if len(chosen) >= limit:
                break
            host = row.host
            if host:
                if hosts.max_concurrent is not None and in_flight[host] >= hosts.max_concurrent:
                    continue
                started = recent[host] + in_flight[host]
                if hosts.max_per_minute is not None and started >= hosts.max_per_minute:
                    continue
                in_flight[host] += 1
            chosen.append(row.source_id)
        return self._lease(conn, chosen, now, owner, lease)

    def renew_leases(self, source_ids: Sequence[str], owner: str, until: datetime) -> int:
        renewed = 0
        with self._write() as conn:
            for chunk in chunks(list(source_ids)):
                renewed += conn.execute(
                    update(sources)
                    .where(sources.c.source_id.in_(chunk), sources.c.lease_owner == owner)
                    .values(lease_until=until)
                ).rowcount
        return renewed

    def claim_sources(
        self, source_ids: Sequence[str], now: datetime, owner: str, lease: timedelta
    ) -> list[SourceState]:
        claimed: list[SourceState] = []
        with self._write() as conn:
            for chunk in chunks(list(source_ids)):
                claimed += self._claim(
                    conn, sources.c.source_id.in_(chunk), now, owner, lease, None
                )
        return claimed

    def release_lease(self, source_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.source_id == source_id, sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def list_lease_owners(self, now: datetime) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                select(sources.c.lease_owner)
                .where(sources.c.lease_owner.is_not(None), sources.c.lease_until >= now)
                .distinct()
            )
            return [row[0] for row in rows]

    def release_leases(self, owner: str) -> int:
        with self._write() as conn:
            result = conn.execute(
                update(sources)
                .where(sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
            return int(result.rowcount)

    def list_overdue(self, now: datetime) -> list[tuple[str, datetime]]:
        with self._read() as conn:
            rows = conn.execute(
                select(sources.c.source_id, sources.c.next_due_at).where(
                    sources.c.enabled.is_(True),
                    sources.c.retired_at.is_(None),
                    sources.c.last_fetch_at.is_not(None),
                    sources.c.next_due_at < now,
                    or_(sources.c.lease_until.is_(None), sources.c.lease_until < now),
                )
            )
            return [(row.source_id, row.next_due_at) for row in rows]

    # ------------------------------------------------------------------ housekeeping

    def claim_job(self, name: str, now: datetime, every: timedelta, owner: str) -> bool:
        values = {"next_run_at": now + every, "last_owner": owner, "last_started_at": now}
        with self._write() as conn:
            # READ COMMITTED re-checks the WHERE after a concurrent claim commits, so of
            # several processes due at once exactly one moves the job forward
            moved = conn.execute(
                update(jobs)
                .where(jobs.c.name == name, jobs.c.next_run_at <= now)
                .values(values)
                .returning(jobs.c.name)
            ).first()
            if moved is not None:
                return True
            # (rowcount of an INSERT .. ON CONFLICT DO NOTHING is -1 on psycopg: RETURNING)
            created = conn.execute(
                self._insert(jobs)
                .values(name=name, **values)
                .on_conflict_do_nothing()
                .returning(jobs.c.name)
            ).first()
            return created is not None

    def finish_job(self, name: str, result: str) -> None:
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.name == name).values(last_result=result))

    def prune(
        self,
        cutoffs: Mapping[str, datetime],
        default_cutoff: datetime | None,
        fetch_log_before: datetime,
        tombstones_before: datetime,
        now: datetime,
    ) -> PruneCounts:
        with self._write() as conn:
            slugs = [row[0] for row in conn.execute(select(categories.c.slug))]
            touched: list[str] = []
            losers: set[int] = set()
            removed = 0
            for slug in slugs:
                cutoff = cutoffs.get(slug, default_cutoff)
                if cutoff is None:
                    continue
                gone = conn.execute(
                    delete(item_categories)
                    .where(
                        item_categories.c.category_slug == slug,
                        item_categories.c.published_at < cutoff,
                    )
                    .returning(item_categories.c.item_id)
                ).all()
                if gone:
                    touched.append(slug)
                    removed += len(gone)
                    losers.update(row[0] for row in gone)
            kept: set[int] = set()
            orphans: list[tuple[int, str]] = []
            for chunk in chunks(sorted(losers)):
                kept.update(
                    row[0]
                    for row in conn.execute(
                        select(item_categories.c.item_id)
                        .where(item_categories.c.item_id.in_(chunk))
                        .distinct()
                    )
                )
            for chunk in chunks(sorted(losers - kept)):
                orphans += [
                    (row.item_id, row.stable_id)
                    for row in conn.execute(
                        select(items.c.item_id, items.c.stable_id).where(items.c.item_id.in_(chunk))
                    )
                ]
            for chunk in chunks(orphans):
                conn.execute(
                    self._insert(pruned_items)
                    .values([{"stable_id": sid, "pruned_at": now} for _, sid in chunk])
                    .on_conflict_do_nothing()
                )
                ids = [item_id for item_id, _ in chunk]
                conn.execute(delete(item_sources).where(item_sources.c.item_id.in_(ids)))
                conn.execute(delete(items).where(items.c.item_id.in_(ids)))
            for slug in touched:  # their feeds changed: new stamps, new ETags
                conn.execute(
                    update(categories)
                    .where(categories.c.slug == slug)
                    .values(last_seq=self._next_seq(conn))
                )
            log_rows = conn.execute(
                delete(fetches).where(fetches.c.started_at < fetch_log_before)
            ).rowcount
            forgotten = conn.execute(
                delete(pruned_items).where(pruned_items.c.pruned_at < tombstones_before)
            ).rowcount
        return PruneCounts(
            memberships=removed,
            items=len(orphans),
            fetch_log=log_rows,
            tombstones=forgotten,
        )

    def find_pruned(self, stable_ids: Sequence[str]) -> set[str]:
        with self._read_raw() as raw:
            return self.writer.pruned_among(raw, stable_ids)

    def request_fetch(self, source_id: str, now: datetime) -> None:
        with self._write() as conn:
            found = conn.execute(
                update(sources)
                .where(sources.c.source_id == source_id)
                .values(next_due_at=now, retired_at=None, gone_count=0)
            ).rowcount
        if not found:
            raise SourceNotFoundError(f"no source {source_id!r}")

    def set_due_times(self, due: Mapping[str, datetime]) -> None:
        with self._write() as conn:
            for source_id, moment in due.items():
                conn.execute(
                    update(sources)
                    .where(sources.c.source_id == source_id)
                    .values(next_due_at=moment)
                )

    # ------------------------------------------------------------------ one fetch

    def get_source_state(self, source_id: str) -> SourceState:
        with self._read() as conn:
            row = conn.execute(select(sources).where(sources.c.source_id == source_id)).first()
        if row is None:
            raise SourceNotFoundError(f"no source {source_id!r} in the database")
        return _state(row)

    def find_known_items(self, source_id: str, stable_ids: Sequence[str]) -> dict[str, KnownItem]:
        with self._read_raw() as raw:
            return self.writer.known_among(raw, source_id, stable_ids)

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update_: SourceUpdate,
    ) -> WriteCounts:
        with self._write() as conn:
            raw = Raw(conn)
            if intents:
                self._lock_seq_first(raw)
            return self._apply_fetch_in(conn, raw, outcome, owner, intents, update_)

    def apply_fetches(self, jobs: Sequence[FetchWrite]) -> list[WriteCounts | StoreError]:
        """Several sources' fetches in one transaction, each inside its own savepoint: a
        source whose write fails is rolled back alone (its slot holds the error), the
        others commit together. Group commit for many small writes (store/batching.py)."""
        results: list[WriteCounts | StoreError] = []
        with self._write() as conn:
            raw = Raw(conn)
            if any(intents for _, _, intents, _ in jobs):
                self._lock_seq_first(raw)
            for job in jobs:
                # SAVEPOINT as SQL text: SQLAlchemy's begin_nested() cost 15% of the
                # writer's time in a cold pass, and the savepoint needs none of its help
                raw.run("SAVEPOINT fetch_write", ())
                try:
                    results.append(self._apply_fetch_in(conn, raw, *job))
                except self._db_errors as e:
                    raw.run("ROLLBACK TO SAVEPOINT fetch_write", ())
                    results.append(
                        StoreError(f"database write failed: {type(e).__name__}: {_first_line(e)}")
                    )
                raw.run("RELEASE SAVEPOINT fetch_write", ())
        return results

    def _lock_seq_first(self, raw: Raw) -> None:
        """On PostgreSQL, lock the seq counter row before anything else an item write
        locks. Every item write locks it (reserving seqs) until commit, but a batch's
        second fetch may first insert a new category: another writer inserting the same
        one waits for this transaction, which waits for that writer's counter row, and
        PostgreSQL aborts one of them (DeadlockDetected, seen with two pass processes).
        Taking the counter first gives every writer the same lock order. SQLite has one
        writer at a time already."""
        if self.dialect != "sqlite":
            raw.one(self.writer.lock_seq, (SEQ_COUNTER,))

    def _apply_fetch_in(
        self,
        conn: Connection,
        raw: Raw,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update_: SourceUpdate,
    ) -> WriteCounts:
        """One fetch's write on ``conn``; ``raw`` is its DB-API cursor (one a transaction)."""
        counts = (
            self._write_items(conn, raw, outcome.source_id, intents, outcome.started_at)
            if intents
            else WriteCounts(0, 0, 0)
        )
        self.writer.record_fetch(raw, outcome, counts.new, counts.updated)
        self.writer.update_source(raw, outcome, owner, update_)
        return counts

    def _write_items(
        self,
        conn: Connection,
        raw: Raw,
        source_id: str,
        intents: Sequence[ItemIntent],
        now: datetime,
    ) -> WriteCounts:
        fresh = [
            ref
            for ref in {r.slug: r for i in intents for r in i.categories}.values()
            if ref.slug not in self._known_slugs
        ]
        if fresh:
            self.writer.ensure_categories(raw, fresh, now)
            moved = self._lost_categories(conn, fresh)
            if moved:
                intents = [_refile(intent, moved) for intent in intents]
            self._known_slugs.update(ref.slug for ref in fresh if ref.slug not in moved)
            self._registry_loaded_at = None  # someone else may own a slug: reload
        result, touched, top = self.writer.write(raw, source_id, intents, now)
        self.writer.stamp_categories(raw, touched, top)
        return WriteCounts(new=result.new, updated=result.updated, memberships=result.memberships)

    @staticmethod
    def _lost_categories(conn: Connection, fresh: Sequence[CategoryRef]) -> dict[str, str]:
        """New categories whose insert another writer beat: the same media name (identity
        key) was just filed under a slug of its own by a concurrent fetch. Their items go
        to that category instead (slug -> the existing slug)."""
        wanted = [ref.slug for ref in fresh]
        present = {
            row[0]
            for chunk in chunks(wanted)
            for row in conn.execute(select(categories.c.slug).where(categories.c.slug.in_(chunk)))
        }
        moved: dict[str, str] = {}
        for ref in fresh:
            if ref.slug in present or not ref.name:
                continue
            owner = conn.execute(
                select(categories.c.slug).where(categories.c.identity_key == identity_key(ref.name))
            ).scalar()
            if owner is not None:
                moved[ref.slug] = owner
        return moved

    # ------------------------------------------------------------------ reading

    def list_source_status(self) -> list[SourceStatus]:
        counts = (
            select(item_sources.c.source_id, func.count().label("n"))
            .group_by(item_sources.c.source_id)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(sources, func.coalesce(counts.c.n, 0).label("item_count"))
                .select_from(sources.outerjoin(counts, counts.c.source_id == sources.c.source_id))
                .order_by(sources.c.source_id)
            ).all()
        return [
            SourceStatus(
                source_id=row.source_id,
                url=row.effective_url or row.url,
                category=row.category,
                enabled=row.enabled,
                last_fetch_at=row.last_fetch_at,
                last_outcome=row.last_outcome,
                last_status=row.last_status,
                last_error=row.last_error,
                next_due_at=row.next_due_at,
                item_count=int(row.item_count),
                consecutive_errors=row.consecutive_errors,
                retired_at=row.retired_at,
                last_warning=row.last_warning,
            )
            for row in rows
        ]

    def count_items(self, category: str | None = None) -> int:
        with self._read() as conn:
            if category is None:
                return int(conn.execute(select(func.count()).select_from(items)).scalar_one())
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(item_categories)
                    .where(item_categories.c.category_slug == category)
                ).scalar_one()
            )

    def _stored_items(self, conn: Connection, rows: Sequence[Any]) -> list[StoredItem]:
        ids = [row.item_id for row in rows]
        slugs: dict[int, list[str]] = {}
        for chunk in chunks(ids):
            for row in conn.execute(
                select(item_categories.c.item_id, item_categories.c.category_slug)
                .where(item_categories.c.item_id.in_(chunk))
                .order_by(item_categories.c.category_slug)
            ):
                slugs.setdefault(row.item_id, []).append(row.category_slug)
        return [
            StoredItem(
                item_id=row.item_id,
                stable_id=row.stable_id,
                seq=row.seq,
                title=row.title,
                link=row.link,
                guid=row.guid,
                summary=row.summary,
                content=row.content,
                author=row.author,
                published_at=row.published_at,
                published_offset_minutes=row.published_offset_minutes,
                first_seen_at=row.first_seen_at,
                updated_at=row.updated_at,
                update_count=row.update_count,
                source_id=row.source_id,
                category_slugs=tuple(slugs.get(row.item_id, ())),
                first_seq=row.first_seq,
            )
            for row in rows
        ]

    def find_item(self, stable_id: str) -> StoredItem | None:
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.stable_id == stable_id)).first()
            return self._stored_items(conn, [row])[0] if row is not None else None

    def list_items(self, category: str | None = None, limit: int = 50) -> list[StoredItem]:
        query = select(items).order_by(items.c.published_at.desc(), items.c.item_id.desc())
        if category is not None:
            query = query.join(item_categories, item_categories.c.item_id == items.c.item_id)
            query = query.where(item_categories.c.category_slug == category)
        with self._read() as conn:
            return self._stored_items(conn, conn.execute(query.limit(limit)).all())

    def list_fetches(self, source_id: str, limit: int = 20) -> list[FetchRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(fetches)
                .where(fetches.c.source_id == source_id)
                .order_by(fetches.c.started_at.desc(), fetches.c.fetch_id.desc())
                .limit(limit)
            ).all()
        return [
            FetchRecord(
                row.source_id,
                row.started_at,
                row.outcome,
                row.http_status,
                row.new_count,
                row.updated_count,
                row.unchanged_count,
                row.error,
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ republishing

    def list_categories(self) -> list[CategoryInfo]:
        counts = (
            select(item_categories.c.category_slug, func.count().label("n"))
            .group_by(item_categories.c.category_slug)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(categories, func.coalesce(counts.c.n, 0).label("item_count"))
                .select_from(
                    categories.outerjoin(counts, counts.c.category_slug == categories.c.slug)
                )
                .order_by(categories.c.slug)
            ).all()
        return [
            CategoryInfo(
                row.slug,
                row.title,
                row.description,
                row.name,
                row.origin,
                int(row.last_seq),
                int(row.item_count),
            )
            for row in rows
        ]

    def find_categories(self, slugs: Sequence[str] | None = None) -> dict[str, CategoryInfo]:
        query = select(categories)
        if slugs is not None:
            query = query.where(categories.c.slug.in_(list(slugs)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {
            row.slug: CategoryInfo(
                row.slug, row.title, row.description, row.name, row.origin, int(row.last_seq), -1
            )
            for row in rows
        }

    def category_stamp(self, slugs: Sequence[str] | None) -> int:
        with self._read() as conn:
            if slugs is None:
                query = select(counters.c.value).where(counters.c.name == SEQ_COUNTER)
            else:
                query = select(func.coalesce(func.max(categories.c.last_seq), 0)).where(
                    categories.c.slug.in_(list(slugs))
                )
            return int(conn.execute(query).scalar_one())

    def list_feed_items(
        self,
        slugs: Sequence[str] | None,
        limit: int,
        offset: int = 0,
        since_seq: int | None = None,
        since_time: datetime | None = None,
    ) -> list[StoredItem]:
        if slugs is not None and len(slugs) == 1:
            # one category: walk its (slug, published_at, item_id) index
            query = (
                select(items)
                .join(item_categories, item_categories.c.item_id == items.c.item_id)
                .where(item_categories.c.category_slug == slugs[0])
                .order_by(item_categories.c.published_at.desc(), item_categories.c.item_id.desc())
            )
        else:
            query = select(items).order_by(items.c.published_at.desc(), items.c.item_id.desc())
            if slugs is not None:
                members = select(item_categories.c.item_id).where(
                    item_categories.c.category_slug.in_(list(slugs))
                )
                query = query.where(items.c.item_id.in_(members))
        if since_seq is not None:
            query = query.where(items.c.seq > since_seq)
        if since_time is not None:
            query = query.where(items.c.updated_at > since_time)
        with self._read() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
            return self._stored_items(conn, rows)

    def list_items_after(
        self, after_seq: int, limit: int, slug: str | None = None
    ) -> list[StoredItem]:
        query = select(items).where(items.c.seq > after_seq).order_by(items.c.seq)
        if slug is not None:
            members = select(item_categories.c.item_id).where(
                item_categories.c.category_slug == slug
            )
            query = query.where(items.c.item_id.in_(members))
        with self._read() as conn:
            return self._stored_items(conn, conn.execute(query.limit(limit)).all())

    def get_item(self, item_id: int) -> StoredItem:
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.item_id == item_id)).first()
            if row is None:
                raise ItemNotFoundError(f"no item {item_id}")
            return self._stored_items(conn, [row])[0]

    def list_source_info(self, source_ids: Collection[str] | None = None) -> dict[str, SourceInfo]:
        query = select(
            sources.c.source_id, sources.c.url, sources.c.effective_url, sources.c.feed_title
        )
        with self._read() as conn:
            if source_ids is None:
                rows = conn.execute(query).all()
            else:
                rows = [
                    row
                    for chunk in chunks(sorted(source_ids))
                    for row in conn.execute(query.where(sources.c.source_id.in_(chunk)))
                ]
        return {
            row.source_id: SourceInfo(
                row.source_id, row.feed_title or row.source_id, row.effective_url or row.url
            )
            for row in rows
        }

    def change_token(self) -> tuple[int, ...] | None:
        """A value that changes whenever any process commits, read without a query: on
        SQLite the size and modification time of the database and its WAL (every commit
        appends to the WAL). None on PostgreSQL: there, ask ``category_stamp``."""
        if self._sqlite_files is None:
            return None
        token: list[int] = []
        for path in self._sqlite_files:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                token += [0, 0]
                continue
            token += [info.st_size, info.st_mtime_ns]
        return tuple(token)

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(select(1)).scalar_one()


def _refile(intent: ItemIntent, moved: Mapping[str, str]) -> ItemIntent:
    """The intent with its categories renamed by ``moved`` (duplicates dropped)."""
    refs = {moved.get(ref.slug, ref.slug): ref for ref in intent.categories}
    return replace(intent, categories=tuple(replace(r, slug=s) for s, r in refs.items()))


def _state(row: Any) -> SourceState:
    return SourceState(
        source_id=row.source_id,
        url=row.url,
        effective_url=row.effective_url,
        etag=row.etag,
        last_modified=row.last_modified,
        body_sha256=row.body_sha256,
        consecutive_errors=row.consecutive_errors,
        next_due_at=row.next_due_at,
        last_fetch_at=row.last_fetch_at,
        last_success_at=row.last_success_at,
        last_item_count=row.last_item_count,
        feed_title=row.feed_title,
        pending_redirect_url=row.pending_redirect_url,
        pending_redirect_count=row.pending_redirect_count,
        gone_count=row.gone_count,
        retired_at=row.retired_at,
        last_warning=row.last_warning,
    )


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
