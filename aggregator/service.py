"""Assembling the running pieces from settings (the imperative shell's wiring)."""

from __future__ import annotations

from aggregator.config import Settings
from aggregator.fetcher import Fetcher
from aggregator.scheduler import new_owner_id
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
