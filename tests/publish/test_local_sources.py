"""A ``file:`` source is a path on this server: no output shows it. Its items are
published like any other's, through the real path (fetch, store, web app, export), on
SQLite and PostgreSQL; every output is searched for the folder the files live in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from starlette.testclient import TestClient

from aggregator.config.settings import Settings, parse_settings
from aggregator.publish.export import FORMATS, export
from aggregator.publish.publisher import Publisher
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.ingest.test_update import make_context

SITE = "https://news.example"


def local_site(store: SqlStore, folder: Path) -> Settings:
    """Two ``file:`` sources in ``folder`` (one of them missing), fetched once."""
    folder.mkdir()
    shutil.copy(FIXTURES / "seed.rss", folder / "seed.rss")
    settings = parse_settings(
        f"""
site_url: {SITE}
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
sources:
  - {{id: local, url: "file:seed.rss", category_from: author}}
  - {{id: missing, url: "file:missing.rss", category: shanghaizhengquanbao}}
""",
        base_dir=folder,
    )
    assert settings.sources[0].url == (folder / "seed.rss").as_uri()
    outcomes, _ = run_pass(make_context(settings, store))
    assert {o.source_id: o.error is None for o in outcomes} == {"local": True, "missing": False}
    return settings


def test_no_output_shows_where_a_file_source_lives(store: SqlStore, tmp_path: Path) -> None:
    folder = tmp_path / "server-only"
    settings = local_site(store, folder)
    client = TestClient(create_app(settings, store))
    bodies = {
        path: client.get(path).content
        for path in (
            "/feeds/all.xml",
            "/feeds/all.atom",
            "/feeds/all.json",
            "/feeds/shanghaizhengquanbao.xml",
            "/feeds/shanghaizhengquanbao.atom",
            "/",
            "/category/shanghaizhengquanbao.html",
            "/api/items",
            "/api/sources",
        )
    }
    out = tmp_path / "export"
    for path in export(Publisher(settings, store, SITE), out, FORMATS):
        bodies[str(path.relative_to(out))] = path.read_bytes()
    leaks = {
        name: body
        for name, body in bodies.items()
        if str(folder).encode() in body or b"file:" in body
    }
    assert leaks == {}
    # the provenance is still there, without a URL
    assert b"<source" not in bodies["/feeds/all.xml"]  # RSS 2.0's <source> needs a url
    assert "上海证券报新闻（测试）".encode() in bodies["/feeds/all.atom"]
    listed = {s["id"]: s for s in json.loads(bodies["/api/sources"])}
    assert listed["local"]["url"] is None
    error = "missing: HTTPStatusError: HTTP 404 file not found: missing.rss"
    assert listed["missing"]["error"] == error  # the file, not where it is
