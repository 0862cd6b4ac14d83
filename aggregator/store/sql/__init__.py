"""The SQLAlchemy adapter of the ``Store`` interface: SQLite (WAL) or PostgreSQL.

SQLite: WAL mode, ``synchronous=NORMAL``, foreign keys on, a 30 s busy timeout, and write
transactions opened with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on a
lock upgrade. PostgreSQL: psycopg 3; claims use ``FOR UPDATE SKIP LOCKED``.

Sequence numbers come from one counter row updated inside each write transaction. On
PostgreSQL the row lock is held until commit, so seq order is commit order: a consumer
paging by seq can never see 12 before a slower transaction commits 11. (A database
sequence would hand out numbers in start order instead.)

``SqlStore`` is a mixin per group of the ``Store`` interface over one shared base:

    base            engines, connections, the write turn, the seq counter, lifecycle
    configuration   following the config; the category registry
    schedule        claims, leases, due times
    housekeeping    the job claim, retention, pruned ids, a fetch asked for by hand
    fetch           one fetch's reads and its write
    reading         source status, items, the fetch log
    republishing    categories and their stamps, feed items, provenance
    rows            rows to values (no business logic)
"""

from __future__ import annotations

from aggregator.store.sql.base import (
    PAGE_SIZE,
    READ_CACHE_KIB,
    REGISTRY_SECONDS,
    WRITE_CACHE_KIB,
    WRITE_POOL_SIZE,
    make_engine,
    normalize_url,
)
from aggregator.store.sql.configuration import ConfigurationMixin
from aggregator.store.sql.fetch import FetchMixin
from aggregator.store.sql.housekeeping import HousekeepingMixin
from aggregator.store.sql.reading import ReadingMixin
from aggregator.store.sql.republishing import RepublishingMixin
from aggregator.store.sql.schedule import ScheduleMixin

__all__ = [
    "PAGE_SIZE",
    "READ_CACHE_KIB",
    "REGISTRY_SECONDS",
    "WRITE_CACHE_KIB",
    "WRITE_POOL_SIZE",
    "SqlStore",
    "make_engine",
    "normalize_url",
]


class SqlStore(
    ConfigurationMixin,
    ScheduleMixin,
    HousekeepingMixin,
    FetchMixin,
    ReadingMixin,
    RepublishingMixin,
):
    """See ``aggregator.store.Store`` for what each method guarantees."""
