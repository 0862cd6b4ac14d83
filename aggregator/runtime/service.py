"""Assembling the running pieces from settings (the imperative shell's wiring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.config.settings import Settings
from aggregator.ingest.fetcher import Fetcher
from aggregator.ingest.update import Context
from aggregator.runtime.memory import Trimmer, limit_arenas
from aggregator.runtime.owners import new_owner_id
from aggregator.store import Store
from aggregator.store.sql import SqlStore

if TYPE_CHECKING:
    from starlette.applications import Starlette


def open_context(settings: Settings, migrate: bool | None = None) -> Context:
    """Open the store (migrating it when ``auto_migrate``), the fetcher, and a lease owner."""
    workers = settings.defaults.workers
    store = SqlStore(settings.database, pool_size=workers + 2)
    if settings.auto_migrate if migrate is None else migrate:
        store.upgrade()
    fetcher = Fetcher(settings.defaults.user_agent, pool_size=max(workers, 4))
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


def app_from_env() -> Starlette:
    """An app built from $AGGREGATOR_CONFIG (for ``serve --workers N``: the server imports
    this in every worker process). The web stack is imported here, not at the top, so a
    fetch never loads it."""
    from aggregator.config.reload import ConfigWatcher
    from aggregator.config.settings import config_path, load_settings
    from aggregator.serve.app import create_app

    settings = load_settings()
    watcher = ConfigWatcher(config_path(), settings)
    store = open_context(settings, migrate=False).store
    start_long_running(store)  # its trimmer runs for the life of this server process
    app = create_app(settings, store, watcher=watcher)
    watcher.start()
    return app
