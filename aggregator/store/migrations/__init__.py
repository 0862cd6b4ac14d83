"""Alembic migrations, run from code (``aggregator db upgrade``, or at start when
``auto_migrate`` is on). On PostgreSQL an advisory lock makes concurrent starts of several
processes run the migration once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StoreError
from aggregator.store.dbapi import SEQ_COUNTER
from aggregator.store.schema import counters, metadata

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
_PG_LOCK_KEY = 7_270_315_001
# The newest revision; a test checks it against Alembic's own view of the scripts. It
# lets a start-up on an up-to-date database skip loading Alembic at all.
HEAD_REVISION = "0008"


def is_at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return False  # no table yet: a new database
    return stored == HEAD_REVISION


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def _is_empty(conn: Connection) -> bool:
    return not inspect(conn).get_table_names()


def _create_at_head(conn: Connection) -> None:
    """An empty database: create the schema.py tables at once and record the head
    revision, as Alembic's "build from scratch" recipe (create_all, then stamp head).
    Running every migration instead cost 0.25 s of each first start, most of it loading
    Alembic. Stamped without Alembic: its version table is this one-column table."""
    metadata.create_all(conn)
    conn.execute(counters.insert().values(name=SEQ_COUNTER, value=0))  # as 0001 seeds it
    version = Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(conn)
    conn.execute(version.insert().values(version_num=HEAD_REVISION))


def upgrade_to_head(engine: Engine) -> None:
    if is_at_head(engine):
        return
    postgres = engine.dialect.name == "postgresql"
    # A write transaction from the start (BEGIN IMMEDIATE on SQLite, the advisory lock on
    # PostgreSQL): two first starts at once must not both find the database empty.
    with engine.connect().execution_options(aggregator_write=True) as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
        try:
            if _is_empty(conn):
                _create_at_head(conn)
                conn.commit()
            else:
                conn.rollback()
                migrate(engine, conn)
        finally:
            if postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()


def migrate(engine: Engine, conn: Connection) -> None:
    """Run the Alembic migrations from the stored revision to head on ``conn``."""
    from alembic import command

    config = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations rebuild a table by copying it and dropping the original;
        # with foreign keys on, that DROP cascades and empties every table pointing
        # at it (items -> item_categories, item_sources). Off for the upgrade, on the
        # raw connection before any transaction (SQLite ignores it inside one), and
        # checked before commit instead.
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if sqlite:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                conn.rollback()
                raise StoreError(
                    f"migration would break {len(broken)} foreign key(s), e.g. {broken[0]}"
                )
        conn.commit()
    finally:
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
