"""Hostile requests (issue 13): whatever a client puts in a path segment, a query
parameter or the Authorization header, every endpoint answers with a 2xx, 3xx or 4xx,
never a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.config.reload import ConfigWatcher
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.serve.stock import stock, stock_settings

TOKEN = "a-long-enough-admin-token"
TITLES = {"alpha": "甲", "beta": "乙"}


@pytest.fixture
def client(store: SqlStore, tmp_path: Path) -> TestClient:
    settings = stock_settings(TITLES, f"server: {{admin_token: {TOKEN}}}\n")
    stock(store, settings, {"alpha": 5, "beta": 3})
    config = tmp_path / "config.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'unused.db'}\n", encoding="utf-8")
    watcher = ConfigWatcher(config, settings)
    return TestClient(create_app(settings, store, watcher=watcher), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xc3\xa9", b"Bearer \xe9", b"Bearer " + TOKEN.encode() + b"\xc3\xa9", b"Bearer", b""],
    ids=["utf-8 é", "latin-1 é", "token and é", "no token", "empty"],
)
def test_a_wrong_token_is_a_401_whatever_its_bytes(
    client: TestClient, authorization: bytes
) -> None:
    response = client.post("/api/sources/alpha-src/fetch", headers={"authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="aggregator"'
    right = client.post(
        "/api/sources/alpha-src/fetch", headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert right.status_code == 202


def test_a_token_with_non_ascii_characters_is_its_utf8(store: SqlStore) -> None:
    token = "管理员令牌-long-enough-1234"
    settings = stock_settings(TITLES, f"server: {{admin_token: {token}}}\n")
    stock(store, settings, {"alpha": 1})
    client = TestClient(create_app(settings, store))
    sent = b"Bearer " + token.encode("utf-8")
    assert (
        client.post("/api/sources/alpha-src/fetch", headers={"authorization": sent}).status_code
        == 202
    )
    wrong = b"Bearer " + token.encode("utf-8")[:-1]
    assert (
        client.post("/api/sources/alpha-src/fetch", headers={"authorization": wrong}).status_code
        == 401
    )
