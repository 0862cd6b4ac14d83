"""The database away while the service runs (issue 13: PostgreSQL stopped for 20 s gave
500s and 63 tracebacks). A feed or page rendered before is served as it was, marked
stale; anything else is a 503 with Retry-After; /readyz says not ready, /healthz stays
up; the log says once that the database went away and once that it is back, with no
traceback. On a PostgreSQL server of the test's own, stopped and started again, and on
an SQLite file taken away and put back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.errors import StoreError
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.serve.pgcluster import Cluster, find_bin_dir, own_cluster
from tests.serve.stock import stock, stock_settings

SETTINGS = stock_settings({"alpha": "甲", "beta": "乙"})
RENDERED = ["/", "/feeds/alpha.xml", "/feeds/all.json", "/category/alpha.html"]
NEVER_RENDERED = [
    "/feeds/alpha.atom",
    "/feeds/beta.xml?limit=3",
    "/category/beta.html",
    "/item/1.html",
    "/api/items",
    "/api/categories",
    "/api/sources",
]
STALE = "aggregator; hit; detail=stale-if-error"


def live_through_an_outage(
    client: TestClient,
    stop: Callable[[], None],
    start: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = {path: client.get(path) for path in RENDERED}
    assert all(response.status_code == 200 for response in before.values())
    caplog.clear()
    with caplog.at_level(logging.INFO):
        stop()
        for _ in range(3):
            for path, earlier in before.items():
                response = client.get(path)
                assert response.status_code == 200, path
                assert response.content == earlier.content, path
                assert response.headers["etag"] == earlier.headers["etag"], path
                assert response.headers["cache-status"] == STALE, path
            etag = before["/feeds/alpha.xml"].headers["etag"]
            again = client.get("/feeds/alpha.xml", headers={"if-none-match": etag})
            assert again.status_code == 304
            for path in NEVER_RENDERED:
                response = client.get(path)
                assert response.status_code == 503, path
                assert response.headers["retry-after"] == "10", path
                assert "the database is not answering" in response.text, path
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["problems"][0].startswith("database: ")
            assert client.get("/healthz").status_code == 200
        start()
        fresh = client.get("/")
        assert fresh.status_code == 200
        assert "cache-status" not in fresh.headers
        assert client.get("/api/items").status_code == 200
        assert client.get("/readyz").status_code == 200
    ours = [r for r in caplog.records if r.name.startswith("aggregator")]
    assert [r for r in caplog.records if r.exc_info] == []  # no traceback, from anyone
    outage = [(r.levelname, r.getMessage()) for r in ours if "database" in r.getMessage()]
    assert len(outage) == 2, outage
    assert outage[0][0] == "ERROR"
    assert outage[0][1].startswith("database unavailable (")
    assert outage[1][0] == "WARNING"
    assert outage[1][1].startswith("database answers again after ")
    # 3 rounds: 5 stale answers (the 304 too) and 8 503s (7 pages and /readyz) each
    assert "15 request(s) got a stale document and 24 a 503" in outage[1][1]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if find_bin_dir() is None:
        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl)")
    with own_cluster() as started:
        yield started


@pytest.mark.slow
def test_postgresql_stopped_and_started_again(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStore(cluster.url, pool_size=4)
    try:
        store.upgrade()
        stock(store, SETTINGS, {"alpha": 3, "beta": 2})
        client = TestClient(create_app(SETTINGS, store))
        live_through_an_outage(client, cluster.stop, cluster.start, caplog)
    finally:
        store.close()


def test_sqlite_file_taken_away_and_put_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database file moved aside and a folder put in its place, the pool's
    connections closed (as a pool recycles them): SQLite cannot open the database, as
    when its file is unreadable to the serving user (a chmod would not do in a test run
    as root, which reads any file; and an open connection keeps reading either way)."""
    path = tmp_path / "aggregator.db"
    aside = tmp_path / "aside.db"
    store = SqlStore(f"sqlite:///{path}")
    store.upgrade()
    stock(store, SETTINGS, {"alpha": 3, "beta": 2})

    def take_away() -> None:
        path.rename(aside)
        path.mkdir()
        store.engine.dispose()

    def put_back() -> None:
        path.rmdir()
        aside.rename(path)

    try:
        client = TestClient(create_app(SETTINGS, store))
        live_through_an_outage(client, take_away, put_back, caplog)
    finally:
        store.close()


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aggregator.serve.availability import DatabaseWatch

    now = [100.0]
    watch = DatabaseWatch(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="aggregator.serve.availability"):
        watch.answered()
        assert caplog.records == []
        for _ in range(5):
            watch.failed(StoreError("database read failed: refused"), stale=True)
        watch.failed(StoreError("database read failed: refused"), stale=False)
        assert watch.is_down
        now[0] += 21
        watch.answered()
        watch.answered()
        assert not watch.is_down
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable (database read failed: refused): answering with the last "
        "rendered feeds and pages where there are some, 503 otherwise, until it answers again",
        "database answers again after 21 s; meanwhile 5 request(s) got a stale document "
        "and 1 a 503",
    ]
