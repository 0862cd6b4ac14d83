"""The HTML pages as the app serves them, over the bundled samples (an RSS feed, an Atom
feed and a JSON list API) ingested through the real path, on SQLite and PostgreSQL: what
a new user sees on the first visit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.config.settings import Settings, load_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.ingest.test_update import make_context

ROOT = Path(__file__).resolve().parents[2]
ITEM_LINK = re.compile(r'<li><a href="http://testserver/item/(\d+)\.html">')


@pytest.fixture
def samples(store: SqlStore) -> tuple[Settings, SqlStore]:
    settings = load_settings(ROOT / "config" / "sources.yaml")
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.error is None for o in outcomes), outcomes
    return settings, store


@pytest.fixture
def client(samples: tuple[Settings, SqlStore]) -> TestClient:
    return TestClient(create_app(*samples))


def test_json_api_items_show_their_outlet(
    client: TestClient, samples: tuple[Settings, SqlStore]
) -> None:
    """The JSON API sample gives no author; its items are filed by mediaName."""
    store = samples[1]
    only_api = [
        i
        for i in store.list_feed_items(None, 100)
        if i.source_id == "eastmoney-api" and i.author is None
    ]
    assert only_api
    infos = store.find_categories(None)
    for item in only_api:
        (slug,) = item.category_slugs
        outlet = infos[slug].name
        assert outlet
        line = f'<a href="http://testserver/item/{item.item_id}.html">'
        category = client.get(f"/category/{slug}.html").text
        row = category[category.index(line) :].split("</li>")[0]
        assert row.endswith(f"</time> · {outlet}</span>"), row
        page = client.get(f"/item/{item.item_id}.html").text
        assert re.search(rf"</time> · {re.escape(outlet)}( ·|</p>)", page)


def test_times_on_pages_carry_their_offset(client: TestClient) -> None:
    for path in ("/", "/category/shanghaizhengquanbao.html"):
        html = client.get(path).text
        times = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', html)
        assert times, path
        for iso, shown in times:
            assert iso.endswith("+08:00"), iso
            assert shown.endswith(" UTC+08:00"), shown
