"""The storage interface. ``SqlStore`` (store/sql/) is its one adapter.

Guarantees every implementation gives:

* every datetime in and out is timezone-aware UTC;
* ``apply_fetch`` is one transaction: a crash or an error leaves nothing of that fetch
  written, and the source's lease is released only with it;
* each item is stored once per ``stable_id``; every insert or update of an item gives it
  a new ``seq`` larger than any committed before it (commit order, so a reader paging by
  seq never skips a later-committed smaller number);
* a source is fetched by one worker at a time: ``claim_*`` hands out leases, and a lease
  not renewed expires, so a dead worker's sources are picked up by another (sooner when
  the scheduler sees the dead process and calls ``release_leases``).

Errors: ``StoreError`` when the database refuses or is unreachable;
``SourceNotFoundError`` from ``get_*`` for an unknown source id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from aggregator.errors import StoreError
from aggregator.model import (
    CategoryInfo,
    CategoryRef,
    FetchOutcome,
    ItemIntent,
    KnownItem,
    SourceInfo,
    SourceState,
    StoredItem,
    public_url,
)
from aggregator.slug import CategoryRegistry


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """A configured source as the schedule needs it (built from config by the shell)."""

    source_id: str
    url: str
    enabled: bool
    interval: timedelta
    category: str | None
    priority: int = 0  # see precedence_order


def precedence_order(plans: Sequence[SourcePlan]) -> dict[str, int]:
    """Each source's place in the order of precedence (0 first), from plans in config
    order: a higher ``priority`` first, then the source listed first. Of an item that
    several sources carry, the copy of the source placed first is the one stored."""
    ranked = sorted(range(len(plans)), key=lambda index: (-plans[index].priority, index))
    return {plans[index].source_id: place for place, index in enumerate(ranked)}


@dataclass(frozen=True, slots=True)
class SourceUpdate:
    """The source's new fetch state, written with the fetch's items."""

    etag: str | None
    last_modified: str | None
    body_sha256: str | None
    effective_url: str | None
    consecutive_errors: int
    feed_title: str | None = None  # the source feed's own title, when it was read
    pending_redirect_url: str | None = None  # see health.py
    pending_redirect_count: int = 0
    gone_count: int = 0
    retired: bool = False  # True: no longer scheduled (repeated 410 Gone)
    warning: str | None = None  # shown in status until a fetch says otherwise


@dataclass(frozen=True, slots=True)
class HostLimits:
    """Per-host politeness across the cluster (None: no limit)."""

    max_concurrent: int | None = None
    max_per_minute: int | None = None

    @property
    def active(self) -> bool:
        return self.max_concurrent is not None or self.max_per_minute is not None


@dataclass(frozen=True, slots=True)
class PruneCounts:
    memberships: int  # items taken out of a category's feed
    items: int  # items removed (no category keeps them), remembered as pruned
    fetch_log: int  # fetch-log rows removed
    tombstones: int  # pruned-item and dropped-item records old enough to forget


@dataclass(frozen=True, slots=True)
class FetchKnowledge:
    """What the store knew that one fetch's decisions need (``find_fetch_knowledge``)."""

    pruned: frozenset[str]  # ids that retention pruned: the fetch must not store them again
    known: Mapping[str, KnownItem]  # the stored items among the other ids, seen from the source
    registry: CategoryRegistry  # every known category; the fetch's own copy to add to
    # ids the source's processing steps dropped: (the item's hash, the steps' fingerprint)
    dropped: Mapping[str, tuple[str, str]] = field(default_factory=dict)


FetchWrite = tuple["FetchOutcome", str, Sequence["ItemIntent"], "SourceUpdate"]
"""The arguments of one ``apply_fetch``: outcome, lease owner, intents, new state."""


@dataclass(frozen=True, slots=True)
class WriteCounts:
    new: int
    updated: int
    memberships: int


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One row of ``aggregator sources``."""

    source_id: str
    url: str
    category: str | None
    enabled: bool
    last_fetch_at: datetime | None
    last_outcome: str | None
    last_status: int | None
    last_error: str | None
    next_due_at: datetime
    item_count: int
    consecutive_errors: int
    retired_at: datetime | None = None
    last_warning: str | None = None
    last_dropped_count: int = 0  # items its processing steps dropped in the last parse

    @property
    def health(self) -> str:
        """One word for status at a glance: disabled, retired, failing, warning, ok, new."""
        if not self.enabled:
            return "disabled"
        if self.retired_at is not None:
            return "retired"
        if self.consecutive_errors:
            return "failing"
        if self.last_warning:
            return "warning"
        return "ok" if self.last_fetch_at else "new"

    def as_json(self) -> dict[str, Any]:
        """The record ``aggregator sources --json`` and ``GET /api/sources`` print. A
        local path is never in it: a ``file:`` source has no ``url`` (null), and its
        error and warning name the file without its folder."""
        url = public_url(self.url)
        # the fetcher's errors name the file it could not read
        folder = "" if url else unquote(urlsplit(self.url).path).rpartition("/")[0]

        def shown(text: str | None) -> str | None:
            return text.replace(folder + "/", "") if text and folder else text

        return {
            "id": self.source_id,
            "url": url,
            "category": self.category,
            "enabled": self.enabled,
            "health": self.health,
            "last_fetch_at": self.last_fetch_at.isoformat() if self.last_fetch_at else None,
            "status": self.last_outcome,
            "http_status": self.last_status,
            "error": shown(self.last_error),
            "warning": shown(self.last_warning),
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "next_due_at": self.next_due_at.isoformat(),
            "items": self.item_count,
            "consecutive_errors": self.consecutive_errors,
            "dropped": self.last_dropped_count,
        }


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One row of the fetch log, as read back."""

    source_id: str
    started_at: datetime
    outcome: str
    http_status: int | None
    new_count: int
    updated_count: int
    unchanged_count: int
    error: str | None
    dropped_count: int = 0  # items the processing steps dropped


class Store(Protocol):
    # --- lifecycle (called by the CLI at start) ---------------------------------------
    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""

    def close(self) -> None: ...

    def release_connections(self) -> None:
        """Close every pooled connection; the store stays usable and opens new ones on
        demand. Called before ``fork()``: an SQLite connection must not cross it."""

    def open_connections(self) -> None:
        """Open the pooled connections a long-running process will use, now (called by
        ``run``, ``worker`` and ``serve`` at start). Opened on demand they kept appearing
        for hours as rare peaks of concurrency reached the pool's size: a file-descriptor
        count that grows looks like a leak to whoever watches it."""

    # --- configuration (called at start and on config reload) -------------------------
    def sync_config(
        self, plans: Sequence[SourcePlan], categories: Iterable[CategoryRef], now: datetime
    ) -> None:
        """Make the sources table follow the config: new sources become due now (spread
        by the caller's next call to ``spread_overdue``), removed ones are disabled and
        yield to every configured source, each source takes its place in the order of
        precedence (``precedence_order`` of ``plans``, which come in config order),
        configured categories are created or retitled."""

    def load_category_registry(self) -> CategoryRegistry:
        """Every known category with its owner key (for slug resolution)."""

    # --- schedule (called by the dispatcher) ------------------------------------------
    def claim_due_sources(
        self,
        now: datetime,
        owner: str,
        limit: int,
        lease: timedelta,
        hosts: HostLimits = HostLimits(),
    ) -> list[SourceState]:
        """Lease up to ``limit`` enabled, unretired sources due at ``now`` and not leased
        by anyone; oldest due first. On PostgreSQL: ``FOR UPDATE SKIP LOCKED``. With
        ``hosts`` limits, a source whose host has ``max_concurrent`` live leases, or
        ``max_per_minute`` fetches started in the last minute (leases included), is left
        due for a later claim; claims are then serialized across processes so the limits
        hold for the whole cluster."""

    def renew_leases(self, source_ids: Sequence[str], owner: str, until: datetime) -> int:
        """Extend ``owner``'s leases on these sources to ``until`` (a slow fetch still
        running); returns how many were still ``owner``'s."""

    def claim_sources(
        self, source_ids: Sequence[str], now: datetime, owner: str, lease: timedelta
    ) -> list[SourceState]:
        """Lease these sources now whether due or not (``aggregator fetch``); sources
        leased by another live worker are left out."""

    def release_lease(self, source_id: str, owner: str) -> None: ...

    def list_lease_owners(self, now: datetime) -> list[str]:
        """Who holds a lease that has not expired at ``now``, each once."""

    def release_leases(self, owner: str) -> int:
        """Release every lease ``owner`` holds (the caller knows that process is dead);
        returns how many."""

    def list_overdue(self, now: datetime) -> list[tuple[str, datetime]]:
        """Enabled, unretired, unleased sources fetched before, with ``next_due_at``
        before ``now``. A source never fetched has no rhythm to keep: it is just due (so
        one another process added a moment ago is not pushed back by a spread)."""

    def set_due_times(self, due: Mapping[str, datetime]) -> None: ...

    def find_oldest_unclaimed_due(self, now: datetime) -> datetime | None:
        """The earliest ``next_due_at`` before ``now`` of an enabled, not retired source
        that no live lease holds, or None when nothing waits (``/metrics``' schedule
        lag)."""

    # --- housekeeping (once per cluster) ---------------------------------------------
    def claim_job(self, name: str, now: datetime, every: timedelta, owner: str) -> bool:
        """True for exactly one caller per period across all processes: the one that
        moved the job's next run from at or before ``now`` to ``now + every``."""

    def finish_job(self, name: str, result: str) -> None: ...

    def prune(
        self,
        cutoffs: Mapping[str, datetime],
        default_cutoff: datetime | None,
        fetch_log_before: datetime,
        tombstones_before: datetime,
        now: datetime,
    ) -> PruneCounts:
        """Retention, in one transaction: take items published before their category's
        cutoff (``cutoffs[slug]``, else ``default_cutoff``; None keeps them) out of that
        category; delete items no category keeps and remember their ids as pruned; bump
        the stamps of the categories that lost items; delete fetch-log rows, and pruned-id
        and dropped-item records, older than the given times."""

    def find_pruned(self, stable_ids: Sequence[str]) -> set[str]:
        """The ids among these that retention pruned (a fetch must not store them again)."""

    def request_fetch(self, source_id: str, now: datetime) -> None:
        """Make a source due now, retired or not (an operator asked for it); the next
        dispatcher tick of any process claims it. Raises SourceNotFoundError."""

    # --- one fetch (called by the orchestrator) ---------------------------------------
    def get_source_state(self, source_id: str) -> SourceState:
        """Raises SourceNotFoundError."""

    def find_known_items(self, source_id: str, stable_ids: Sequence[str]) -> dict[str, KnownItem]:
        """The stored items among ``stable_ids``, seen from ``source_id``: its own content
        hash of each, and whose copy is stored, in its order of precedence (``Holder``)."""

    def find_fetch_knowledge(
        self, source_id: str, stable_ids: Sequence[str], *, with_dropped: bool = False
    ) -> FetchKnowledge:
        """What a fetch of ``source_id`` that parsed ``stable_ids`` needs to decide, in one
        read transaction (one connection, one round of queries): which of the ids
        retention pruned (as ``find_pruned``), the stored items among the others (as
        ``find_known_items``), and a copy of the category registry (as
        ``load_category_registry``: the cached one while it is fresh, so no query for it
        then); ``with_dropped`` (a source with processing steps): which of the others its
        steps dropped before. Called by the orchestrator once a feed is parsed. Raises
        StoreError."""

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update: SourceUpdate,
    ) -> WriteCounts:
        """Write the items, the source's new state and the fetch-log row, and release the
        lease, in one transaction. An item's stored copy is replaced (NEW that found the
        id taken, UPDATED) only by its own source or one that takes precedence over it,
        checked as it is written: a decision made before another process wrote the item
        cannot put a lower source's copy over a higher one's."""

    # --- reprocessing (called by ``aggregator reprocess``) ------------------------------
    def list_source_items(self, source_id: str) -> list[tuple[StoredItem, str]]:
        """The items ``source_id`` stored first, each with the hash of the version it last
        gave (``item_sources.content_sha256``), oldest first."""

    def rewrite_items(
        self, source_id: str, intents: Sequence[ItemIntent], now: datetime
    ) -> WriteCounts:
        """Write UPDATED intents that reprocessing made of stored items, in one
        transaction: each takes a new seq and its categories a new stamp, as a fetch's
        updates do; no fetch is recorded and the source's state is left alone."""

    def write_turn(self) -> AbstractContextManager[None]:
        """Hold this process's turn to write: ``apply_fetch*`` inside it do not wait for
        it again. For a caller that gathers a batch once its turn has come, so what
        arrived while it waited goes into the same transaction. Where the database queues
        writers itself (PostgreSQL) it holds nothing."""

    def apply_fetches(self, jobs: Sequence[FetchWrite]) -> list[WriteCounts | StoreError]:
        """Several ``apply_fetch`` writes in one transaction, each in its own savepoint:
        each source's write commits whole or not at all; a failed one's slot holds its
        StoreError. Raises StoreError when the transaction as a whole fails."""

    # --- reading (called by the CLI, the web app and tests) ---------------------------
    def list_source_status(self) -> list[SourceStatus]: ...

    def count_items(self, category: str | None = None) -> int: ...

    def find_item(self, stable_id: str) -> StoredItem | None: ...

    def list_items(self, category: str | None = None, limit: int = 50) -> list[StoredItem]:
        """Newest published first, ties by item id descending."""

    def list_fetches(self, source_id: str, limit: int = 20) -> list[FetchRecord]:
        """Newest first."""

    # --- republishing (called by the web app and exports) -----------------------------
    def list_categories(self) -> list[CategoryInfo]:
        """Every category, by slug, with item counts (a scan: for status pages)."""

    def find_categories(self, slugs: Sequence[str] | None = None) -> dict[str, CategoryInfo]:
        """These categories (None: all) by slug, without counting items (item_count is
        -1): primary-key lookups, for rendering."""

    def category_stamp(self, slugs: Sequence[str] | None) -> int:
        """The highest seq written into any of ``slugs`` (None: anywhere). Changes whenever
        one of those feeds changes; one primary-key lookup per slug."""

    def list_feed_items(
        self,
        slugs: Sequence[str] | None,
        limit: int,
        offset: int = 0,
        since_seq: int | None = None,
        since_time: datetime | None = None,
        ticker: str | None = None,
    ) -> list[StoredItem]:
        """Items of any of ``slugs`` (None: all), newest published first, ties by item id
        descending; ``since_seq`` keeps seq > it, ``since_time`` updated_at > it;
        ``ticker`` (``600519.SH``) keeps the items naming that security, walking its
        (code, published_at, item_id) index. Each item carries its ``tickers``."""

    def find_adjacent_items(
        self, slug: str, item_id: int
    ) -> tuple[StoredItem | None, StoredItem | None]:
        """The items just newer and just older than ``item_id`` in ``slug``'s page order
        (``list_feed_items``' order), at any depth, for an item page's previous/next;
        (None, None) when the item is not in that category. Two index lookups."""

    def list_items_after(
        self, after_seq: int, limit: int, slug: str | None = None, ticker: str | None = None
    ) -> list[StoredItem]:
        """Items with seq > ``after_seq`` in seq order (for cursors); ``slug`` keeps one
        category's, ``ticker`` (``600519.SH``) the items naming that security."""

    def get_item(self, item_id: int) -> StoredItem:
        """Raises ItemNotFoundError."""

    def list_source_info(self, source_ids: Collection[str] | None = None) -> dict[str, SourceInfo]:
        """Title and URL of these sources (default: every source), for provenance. A feed
        render asks for its items' sources only: reading all 10,000 of a large deployment
        cost 54 ms of a 77 ms render (docs/benchmarks.md, Scale)."""

    def change_token(self) -> tuple[int, ...] | None:
        """Something that changes whenever any process commits, read without a query,
        or None where the database offers nothing so cheap (then use category_stamp)."""

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
