"""What the parts of ``SqlStore`` share: the engines (SQLite's pragmas, the pools), read
and write connections and their errors, the write turn (a lock file on SQLite), the
seq counter, the cached category registry and the store's lifecycle."""

from __future__ import annotations

import fcntl
import importlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from aggregator.errors import StoreError
from aggregator.model import CategoryRef
from aggregator.slug import CategoryRegistry
from aggregator.store.dbapi import SEQ_COUNTER, Dialect, Raw
from aggregator.store.schema import counters
from aggregator.store.writes import ItemWriter

REGISTRY_SECONDS = 5.0  # how long a read of the category registry is used again
# slug, title, description, name, identity_key, origin: what the registry is built from
CategoryRow = tuple[str, str, str, str | None, str | None, str]
CATEGORY_ROWS_SQL = "SELECT slug, title, description, name, identity_key, origin FROM categories"


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


class SqlStoreBase:
    """The connections and state every group of ``SqlStore`` methods works with."""

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
            raise StoreError(f"database write failed: {type(e).__name__}: {first_line(e)}") from e

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"database read failed: {type(e).__name__}: {first_line(e)}") from e

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
            raise StoreError(f"database read failed: {type(e).__name__}: {first_line(e)}") from e

    def upgrade(self) -> None:
        from aggregator.store.migrations import upgrade_to_head

        with self._upgrade_lock:
            try:
                upgrade_to_head(self.engine)
            except SQLAlchemyError as e:
                raise StoreError(f"migration failed: {first_line(e)}") from e

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

    # ------------------------------------------------------------------ category registry

    def _cached_registry(self) -> CategoryRegistry | None:
        """A copy of the registry read less than REGISTRY_SECONDS ago, else None."""
        loaded = self._registry_loaded_at
        if (
            self._registry is not None
            and loaded is not None
            and (time.monotonic() - loaded < REGISTRY_SECONDS)
        ):
            return self._registry.copy()
        return None

    def _remember_registry(self, rows: Iterable[CategoryRow]) -> CategoryRegistry:
        """The registry of these category rows, kept for ``_cached_registry``; a copy."""
        registry = CategoryRegistry()
        for slug, title, description, name, key, origin in rows:
            registry.add(
                CategoryRef(slug, title, description, name), key if origin == "derived" else None
            )
            if origin == "config" and key:
                registry.by_key.setdefault(key, slug)
        self._registry, self._registry_loaded_at = registry, time.monotonic()
        self._known_slugs = set(registry.by_slug)
        return registry.copy()


def first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
