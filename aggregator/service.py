"""Assembling the running pieces from settings (the imperative shell's wiring)."""

from __future__ import annotations

from aggregator.config import Settings
from aggregator.fetcher import Fetcher
from aggregator.memory import Trimmer, limit_arenas
from aggregator.scheduler import new_owner_id
from aggregator.store import Store
from aggregator.store.sql import SqlStore
from aggregator.update import Context


def open_context(settings: Settings, migrate: bool | None = None) -> Context:
    """Open the store (migrating it when ``auto_migrate``), the fetcher, and a lease owner."""
    workers = settings.defaults.workers
    store = SqlStore(settings.database, pool_size=workers + 2)
    if settings.auto_migrate if migrate is None else migrate:
        store.upgrade()
    fetcher = Fetcher(
        settings.defaults.user_agent,
        pool_size=max(workers, 4),
        allow_private_networks=settings.allow_private_networks,
    )
    return Context(settings=settings, store=store, fetcher=fetcher, owner=new_owner_id())


def close_context(ctx: Context) -> None:
    ctx.fetcher.close()
    ctx.store.close()


def start_long_running(store: Store) -> Trimmer:
    """What a process that serves or fetches for days does at start (``run``, ``worker``,
    each ``serve`` process), before its threads: cap malloc arenas, open the store's
    pooled connections, and trim freed memory every minute (memory.py). Stop the
    returned trimmer on the way out."""
    limit_arenas()
    store.open_connections()
    return Trimmer().start()
