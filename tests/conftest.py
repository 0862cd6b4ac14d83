"""Shared fixtures: a real feed server on 127.0.0.1, stores on real SQLite and (when
AGGREGATOR_TEST_POSTGRES_URL is set) real PostgreSQL, and the seed item."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from aggregator.store.sql import SqlStore, normalize_url
from tests.feedserver import FeedServer, serving

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "feeds"
# The seed item as the original site published it (a Jekyll post), kept in the repository
# as the golden file the Jekyll export is held to byte for byte: tests read nothing
# outside the repository, so a plain `git clone` passes them.
SEED_POST = ROOT / "tests" / "fixtures" / "posts" / "2022-01-25-NW202201252261008680.md"
# Where the team's shared seed lives beside a checkout; only test_export's extra check
# reads it, and skips when it is not there.
SHARED_SEED = ROOT.parent / "shared" / "seeds" / "000_4e12b1c14f0f788d.txt"
POSTGRES_ENV = "AGGREGATOR_TEST_POSTGRES_URL"
NO_POSTGRES = (
    f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1/aggregator_test)"
)


@dataclass(frozen=True)
class Seed:
    """The seed item's data, taken from the published Jekyll post."""

    title: str
    body_html: str
    link: str
    info_code: str
    media: str
    date_text: str
    published_utc: datetime


def load_seed() -> Seed:
    lines = SEED_POST.read_text(encoding="utf-8").split("\n")
    title = lines[2].removeprefix('title: "').removesuffix('"')
    return Seed(
        title=title,
        body_html=lines[7],
        link="http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201252261008680",
        info_code="NW202201252261008680",
        media="上海证券报",
        date_text="2022-01-25 15:24:31 +0800",
        published_utc=datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC),
    )


@pytest.fixture(scope="session")
def seed() -> Seed:
    return load_seed()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with serving() as server:
        yield server


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = postgres_url()
    if not url:
        pytest.skip(NO_POSTGRES)
    return normalize_url(url)


def fresh_postgres_database(admin_url: str) -> str:
    """A new empty database on the test server; returns its URL."""
    name = "agg_" + uuid.uuid4().hex[:12]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        for attempt in range(5):
            try:
                with engine.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                break
            except OperationalError:
                # "source database template1 is being accessed by other users": another
                # CREATE DATABASE is copying it right now; wait and try again
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
    finally:
        engine.dispose()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def drop_postgres_database(admin_url: str, url: str) -> None:
    name = url.rpartition("/")[2]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def fresh_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, name: str = "aggregator.db"
) -> Iterator[str]:
    """For a fixture to yield from: a fresh, empty database URL on ``backend`` (an SQLite
    file named ``name``, or a new PostgreSQL database dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / name}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    url = fresh_postgres_database(admin)
    try:
        yield url
    finally:
        drop_postgres_database(admin, url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: an SQLite file, or a new PostgreSQL database."""
    yield from fresh_database_url(request.param, request, tmp_path)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(database_url, pool_size=8)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()
