"""Pages and limits at their ends (issue 13): a category page past the last is a 404, and
a limit outside 1..500 is a 400 at either end."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from aggregator.serve.app import PAGE_SIZE, create_app
from aggregator.store.sql import SqlStore
from tests.serve.stock import stock, stock_settings


@pytest.fixture
def client(store: SqlStore) -> TestClient:
    settings = stock_settings({"small": "小", "full": "满", "empty": "空"})
    stock(store, settings, {"small": 5, "full": PAGE_SIZE * 2})
    return TestClient(create_app(settings, store))


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/category/small.html", 200),
        ("/category/small.html?page=1", 200),
        ("/category/small.html?page=2", 404),
        ("/category/full.html?page=2", 200),
        ("/category/full.html?page=3", 404),
        ("/category/empty.html", 200),  # exists, and says it is empty
        ("/category/empty.html?page=2", 404),
        ("/category/small.html?page=0", 400),
    ],
)
def test_a_page_past_the_last_is_a_404(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status, url
    if status == 404:
        assert "没有这一页" in response.text
        assert client.get(url).status_code == 404  # and stays one: nothing cached


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/feeds/small.json?limit=1", 200),
        ("/feeds/small.json?limit=500", 200),
        ("/feeds/small.json?limit=501", 400),
        ("/feeds/small.json?limit=0", 400),
        ("/feeds/small.json?limit=-1", 400),
        ("/api/items?limit=500", 200),
        ("/api/items?limit=501", 400),
        ("/api/items?limit=-1", 400),
    ],
)
def test_limit_is_from_1_to_500_at_both_ends(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status, url
    if status == 400:
        assert "limit must be a whole number from 1 to 500" in response.text
