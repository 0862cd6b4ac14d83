"""Alembic migrations, run from code (``aggregator db upgrade``, or at start when
``auto_migrate`` is on). On PostgreSQL an advisory lock makes concurrent starts of several
processes run the migration once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
_PG_LOCK_KEY = 7_270_315_001
# The newest revision; a test checks it against Alembic's own view of the scripts. It
# lets a start-up on an up-to-date database skip loading Alembic at all.
HEAD_REVISION = "0004"


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


def upgrade_to_head(engine: Engine) -> None:
    if is_at_head(engine):
        return
    from alembic import command

    config = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
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
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
