"""Assembling the running pieces from settings (the imperative shell's wiring)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from aggregator.config.settings import Settings
from aggregator.ingest.fetcher import Fetcher
from aggregator.ingest.update import Context
from aggregator.model import CategoryRef
from aggregator.runtime.memory import Trimmer, limit_arenas
from aggregator.runtime.owners import new_owner_id
from aggregator.store import SourcePlan, Store
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


def source_plans(settings: Settings) -> list[SourcePlan]:
    return [
        SourcePlan(
            s.id, s.url, s.enabled, s.effective_interval(settings.defaults), s.category, s.priority
        )
        for s in settings.sources
    ]


def configured_categories(settings: Settings) -> list[CategoryRef]:
    return [
        CategoryRef(slug, c.title, c.description, c.name) for slug, c in settings.categories.items()
    ]


def follow_config(store: Store, settings: Settings) -> None:
    """Make the database follow a reloaded config: its sources, and its categories'
    titles and descriptions (a retitled category gets a new stamp, so every cached copy
    and ETag of its feeds goes stale). ``serve`` subscribes this to its config watcher,
    before its app; ``run`` and ``worker`` do it in ``Dispatcher.apply_settings``."""
    store.sync_config(source_plans(settings), configured_categories(settings), datetime.now(UTC))


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
    # the database first, then the app (create_app subscribes it): before, `serve` alone
    # logged a reload and kept serving the old category titles (issue 13)
    watcher.subscribe(partial(follow_config, store))
    app = create_app(settings, store, watcher=watcher)
    watcher.start()
    return app
