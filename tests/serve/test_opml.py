"""/feeds.opml after a real pass over the bundled samples, read as another reader reads
it (listparser): every category's feed and ``all``, each once."""

from __future__ import annotations

from pathlib import Path

import listparser
from starlette.testclient import TestClient

from aggregator.config.settings import load_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.ingest.test_update import make_context

ROOT = Path(__file__).resolve().parents[2]


def test_feeds_opml_lists_every_feed(store: SqlStore) -> None:
    settings = load_settings(ROOT / "config" / "sources.yaml")
    run_pass(make_context(settings, store))
    client = TestClient(create_app(settings, store))
    response = client.get("/feeds.opml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-opml; charset=utf-8"
    parsed = listparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "opml2"
    urls = [feed.url for feed in parsed.feeds]
    slugs = [c.slug for c in store.list_categories()]
    assert len(slugs) >= 6
    expected = [f"http://testserver/feeds/{s}.xml" for s in sorted(slugs)]
    assert urls == [*expected, "http://testserver/feeds/all.xml"]
    by_url = {feed.url: feed for feed in parsed.feeds}
    first = store.list_categories()[0]
    assert by_url[f"http://testserver/feeds/{first.slug}.xml"].title == first.title
    assert by_url[expected[0]].categories == [["分类"]]
    assert by_url["http://testserver/feeds/all.xml"].categories == [["合并"]]
    for url in urls:  # each one answers
        assert client.get(url).status_code == 200, url
