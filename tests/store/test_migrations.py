"""Alembic migrations on real SQLite and real PostgreSQL: an empty database upgrades to
exactly the schema in aggregator/store/schema.py, and so does a database written by
release 0.1.0 (tests/fixtures/releases/, schema 0002), keeping every row; the upgraded
store then takes new fetches; a downgrade to 0002 gives back the 0.1.0 schema (issue #5)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, make_url, text

from aggregator.config.settings import parse_settings
from aggregator.model import OutcomeKind
from aggregator.runtime.scheduler import run_pass
from aggregator.store.migrations import HEAD_REVISION, alembic_config, is_at_head
from aggregator.store.migrations import migrate as migrate_with_alembic
from aggregator.store.schema import metadata
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES, ROOT, Seed, fresh_database_url
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

RELEASES = ROOT / "tests" / "fixtures" / "releases"
RELEASE_REVISION = "0002"  # the schema of release 0.1.0
SEED_ID = "NW202201252261008680"
# the seed item as 0.1.0 left it: first stored from cnstock, then retitled by
# seed-updated.rss on the second pass (see tests/fixtures/releases/README.md)
UPDATED_SEED_TITLE = "上海发布网络安全产业三年行动计划（更新）"
# columns added after 0.1.0 (0003), with the value every old row must get
NEW_COLUMNS: dict[str, dict[str, object]] = {
    "sources": {
        "pending_redirect_url": None,
        "pending_redirect_count": 0,
        "gone_count": 0,
        "retired_at": None,
        "last_warning": None,
        "interval_seconds": None,
        "precedence": None,
    },
    "fetches": {"warning": None},
    "items": {"source_updated_at": None},
}

Rows = dict[str, list[tuple[Any, ...]]]


def schema_drift(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would change to reach the SQLAlchemy metadata (types,
    nullability, server defaults, keys, indexes); empty when they agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_server_default": True})
        diffs: list[Any] = compare_metadata(context, metadata)
        return diffs


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_of(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, keys and indexes as the database reports them."""
    found = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in found.get_columns(table)
            ],
            "primary_key": found.get_pk_constraint(table),
            "unique": sorted(found.get_unique_constraints(table), key=lambda u: str(u["name"])),
            "foreign_keys": sorted(found.get_foreign_keys(table), key=lambda f: str(f["name"])),
            "indexes": sorted(found.get_indexes(table), key=lambda i: str(i["name"])),
        }
        for table in sorted(found.get_table_names())
    }


def rows_of(engine: Engine, columns: dict[str, list[str]]) -> Rows:
    """Every row of each table, reduced to the given columns, in a stable order."""
    with engine.connect() as conn:
        return {
            table: [
                tuple(row)
                for row in conn.execute(
                    text(
                        f"SELECT {', '.join(names)} FROM {table} ORDER BY "
                        + ", ".join(str(i) for i in range(1, len(names) + 1))
                    )
                )
            ]
            for table, names in columns.items()
        }


def data_columns(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {
        table: [c["name"] for c in found.get_columns(table)]
        for table in found.get_table_names()
        if table != "alembic_version"
    }


def load_pg_dump(url: str, dump: Path) -> None:
    """Restore a plain-format pg_dump through psycopg, as psql would: statements as they
    are, COPY blocks through COPY FROM STDIN. psql's own meta-commands (``\\restrict``,
    written by pg_dump since 15.14) mean nothing to the server and are skipped."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    lines = iter(dump.read_text(encoding="utf-8").split("\n"))
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        statement = ""
        for line in lines:
            if not statement and (not line.strip() or line.startswith(("--", "\\"))):
                continue
            statement += line + "\n"
            if not line.rstrip().endswith(";"):
                continue
            if statement.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
                with cur.copy(statement) as copy:
                    for row in lines:
                        if row == "\\.":
                            break
                        copy.write(row + "\n")
            else:
                cur.execute(statement)
            statement = ""


@pytest.fixture
def release_url(database_url: str) -> str:
    """``database_url`` holding what release 0.1.0 wrote: a copy of its SQLite file, or
    its PostgreSQL dump restored into the fresh database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        shutil.copyfile(RELEASES / "0.1.0.sqlite", url.database)
    else:
        load_pg_dump(database_url, RELEASES / "0.1.0.postgres.sql")
    return database_url


@pytest.fixture
def release_store(release_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(release_url)
    try:
        yield opened
    finally:
        opened.close()


def downgrade(engine: Engine, revision: str) -> None:
    """``alembic downgrade`` on the engine, as ``upgrade_to_head`` runs an upgrade."""
    config = alembic_config(engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()


def test_an_empty_database_upgrades_to_exactly_the_schema(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        assert revision_of(store.engine) is None
        assert not is_at_head(store.engine)
        store.upgrade()
        assert revision_of(store.engine) == HEAD_REVISION
        assert is_at_head(store.engine)  # the start-up shortcut agrees
        assert schema_drift(store.engine) == []
        with store.engine.connect() as conn:
            counters = conn.execute(text("SELECT name, value FROM counters")).all()
        assert [tuple(c) for c in counters] == [("item_seq", 0)]
        store.upgrade()  # idempotent
        assert revision_of(store.engine) == HEAD_REVISION
    finally:
        store.close()


@pytest.fixture
def second_url(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another fresh, empty database on the same backend as ``database_url``."""
    backend = make_url(database_url).get_backend_name()
    yield from fresh_database_url(backend, request, tmp_path, "second.db")


def test_the_migrations_build_what_a_first_start_creates(
    database_url: str, second_url: str
) -> None:
    """A first start on an empty database creates the schema at once and stamps it at
    head; the migration scripts, run from nothing, must build exactly the same tables,
    keys, indexes and rows, or databases would differ by how they were made."""
    created = SqlStore(database_url)
    migrated = SqlStore(second_url)
    try:
        created.upgrade()
        with migrated.engine.connect() as conn:
            migrate_with_alembic(migrated.engine, conn)
        assert revision_of(migrated.engine) == revision_of(created.engine) == HEAD_REVISION
        assert schema_of(created.engine) == schema_of(migrated.engine)
        tables = {"counters": ["name", "value"], "alembic_version": ["version_num"]}
        assert rows_of(created.engine, tables) == rows_of(migrated.engine, tables)
    finally:
        created.close()
        migrated.close()


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_a_0_1_0_database_upgrades_keeping_every_row(release_store: SqlStore) -> None:
    engine = release_store.engine
    assert revision_of(engine) == RELEASE_REVISION
    columns = data_columns(engine)
    before = rows_of(engine, columns)
    assert {table: len(rows) for table, rows in before.items()} == {
        "sources": 9,
        "categories": 7,
        "items": 23,
        "item_categories": 24,
        "item_sources": 25,
        "fetches": 16,
        "counters": 1,
    }

    release_store.upgrade()

    assert revision_of(engine) == HEAD_REVISION
    assert is_at_head(engine)
    assert schema_drift(engine) == []
    assert rows_of(engine, columns) == before  # every old column of every old row
    with engine.connect() as conn:
        for table, defaults in NEW_COLUMNS.items():
            got = conn.execute(text(f"SELECT DISTINCT {', '.join(defaults)} FROM {table}"))
            assert [tuple(row) for row in got] == [tuple(defaults.values())], table
        # 0004 reads each source's host from its URL; 0.1.0's sources were file: URLs
        # but one, and that one was never fetched
        hosts = dict(conn.execute(text("SELECT source_id, host FROM sources")).all())
        assert hosts == dict.fromkeys(hosts, "") | {"disabled": "news.example.com"}
        for table in sorted(set(metadata.tables) - set(columns)):  # tables added since
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0

    # and read back through the store, as the service reads it
    item = release_store.find_item(SEED_ID)
    assert item is not None
    assert item.title == UPDATED_SEED_TITLE
    assert item.published_at.isoformat() == "2022-01-25T07:24:31+00:00"
    assert item.published_offset_minutes == 480
    assert item.category_slugs == ("cnstock", "shanghaizhengquanbao")
    assert (item.seq, item.first_seq, item.update_count) == (26, 4, 1)
    assert item.is_update
    assert release_store.count_items() == 23
    assert release_store.count_items("zhengquanshibao") == 10
    registry = release_store.load_category_registry()
    assert registry.by_slug["21shijijingjibaodao"].title == "21世纪经济报道新闻"
    state = release_store.get_source_state("eastmoney")
    assert state.last_modified == "Wed, 26 Jan 2022 08:00:00 GMT"  # the validator
    assert state.feed_title == "上海证券报新闻（测试）"
    assert (state.gone_count, state.pending_redirect_count, state.retired_at) == (0, 0, None)
    assert [(f.outcome, f.updated_count) for f in release_store.list_fetches("eastmoney")] == [
        ("ok", 1),
        ("ok", 0),
    ]
    health = {s.source_id: s.health for s in release_store.list_source_status()}
    assert health == {
        "eastmoney": "ok",
        "cnstock": "ok",
        "jsonfeed": "ok",
        "rss20": "ok",
        "atom10": "ok",
        "dates": "ok",
        "ids": "ok",
        "missing": "failing",
        "disabled": "disabled",
    }


FETCH_CONFIG = """
database: sqlite:///unused.db
allow_networks: [127.0.0.0/8]
timezone: Asia/Shanghai
defaults: {{interval: 10m, workers: 2}}
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
  cnstock: {{title: 中国证券网转载}}
sources:
  - id: eastmoney
    url: {seed}
    category_from: author
  - id: fresh
    url: {fresh}
    category_from: author
"""


def test_an_upgraded_0_1_0_database_takes_new_fetches(
    release_store: SqlStore, feed_server: FeedServer, seed: Seed
) -> None:
    release_store.upgrade()
    old = {i.stable_id: i for i in release_store.list_items(limit=100)}
    assert len(old) == 23
    old_max_seq = max(i.seq for i in old.values())
    old_max_id = max(i.item_id for i in old.values())
    # eastmoney moves to HTTP and serves the seed's original title again: an update of
    # an old row; "fresh" is new and files its items into 0.1.0's derived categories
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/rss10.rdf"] = Route(
        (FIXTURES / "rss10.rdf").read_bytes(), content_type="application/rdf+xml"
    )
    settings = parse_settings(
        FETCH_CONFIG.format(seed=feed_server.url("/seed.rss"), fresh=feed_server.url("/rss10.rdf"))
    )

    outcomes, skipped = run_pass(make_context(settings, release_store))

    assert skipped == []
    assert {o.source_id: (o.kind, o.new_count, o.updated_count) for o in outcomes} == {
        "eastmoney": (OutcomeKind.OK, 0, 1),
        "fresh": (OutcomeKind.OK, 2, 0),
    }
    now = {i.stable_id: i for i in release_store.list_items(limit=100)}
    assert set(old) < set(now)
    new = [now[sid] for sid in set(now) - set(old)]
    assert sorted(i.title for i in new) == [
        "光伏产业链价格企稳回落",
        "北向资金单日净流出 机构称中长期趋势未变",
    ]
    assert all(i.seq > old_max_seq and i.item_id > old_max_id for i in new)
    assert {i.category_slugs for i in new} == {("zhengquanshibao",), ("zhengquanribao",)}
    assert release_store.count_items() == 25
    assert release_store.count_items("zhengquanshibao") == 11

    item = release_store.find_item(SEED_ID)
    assert item is not None
    assert item.title == seed.title
    assert item.item_id == old[SEED_ID].item_id
    assert item.seq > old_max_seq  # it changed: news again in its categories
    assert (item.first_seq, item.update_count) == (4, 2)
    assert item.category_slugs == ("cnstock", "shanghaizhengquanbao")
    for sid, before in old.items():  # everything else is as it was
        if sid != SEED_ID:
            assert now[sid] == before
    log = release_store.list_fetches("eastmoney")
    assert [(f.outcome, f.updated_count) for f in log] == [("ok", 1), ("ok", 1), ("ok", 0)]
    # sources left out of the new config are kept, disabled
    health = {s.source_id: s.health for s in release_store.list_source_status()}
    assert health["fresh"] == "ok"
    assert health["cnstock"] == "disabled"


def test_downgrade_to_0_1_0_and_upgrade_again(release_store: SqlStore) -> None:
    engine = release_store.engine
    release_schema = schema_of(engine)
    columns = data_columns(engine)
    before = rows_of(engine, columns)

    release_store.upgrade()
    downgrade(engine, RELEASE_REVISION)

    assert revision_of(engine) == RELEASE_REVISION
    assert not is_at_head(engine)
    assert schema_of(engine) == release_schema  # what 0.1.0 itself reads and writes
    assert rows_of(engine, columns) == before

    release_store.upgrade()

    assert revision_of(engine) == HEAD_REVISION
    assert schema_drift(engine) == []
    assert rows_of(engine, columns) == before


def test_a_table_rebuilt_by_a_migration_keeps_the_rows_pointing_at_it(database_url: str) -> None:
    """SQLite migrations rebuild tables (copy, drop, rename). With foreign keys on, the
    drop of ``items`` in 0002 cascaded and emptied every membership: the upgrade now runs
    with them off and checks them before it commits."""
    store = SqlStore(database_url)
    try:
        with store.engine.connect() as conn:
            config = alembic_config(store.engine)
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.commit()
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO categories (slug, title, description, origin, created_at) "
                    "VALUES ('news', 'N', '', 'config', '2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO items (item_id, stable_id, seq, title, published_at, "
                    "published_offset_minutes, first_seen_at, updated_at, update_count, "
                    "source_id) VALUES (1, 'x', 1, 't', '2026-01-01 00:00:00', 0, "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 0, 's')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO item_categories (item_id, category_slug, published_at, "
                    "added_at) VALUES (1, 'news', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO item_sources (item_id, source_id, content_sha256, "
                    "first_seen_at, last_seen_at) VALUES (1, 's', 'h', '2026-01-01 00:00:00', "
                    "'2026-01-01 00:00:00')"
                )
            )
        store.upgrade()
        with store.engine.connect() as conn:
            counts = [
                conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("items", "item_categories", "item_sources")
            ]
        assert counts == [1, 1, 1]
        assert store.list_items("news")[0].stable_id == "x"
    finally:
        store.close()
