"""/status in headless Chromium (as test_browser.py drives it): the failing source is
the first row, its error is shown as text, and its link opens its fetch history."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from aggregator.config.settings import parse_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context
from tests.serve.test_browser import CHROMIUM, CHROMIUM_FLAGS, free_port

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"needs Debian's chromium at {CHROMIUM}"
)


def test_status_page_in_a_real_browser(tmp_path: Path, feed_server: FeedServer) -> None:
    from playwright.sync_api import sync_playwright

    feed_server.routes["/good.xml"] = Route((FIXTURES / "rss20.xml").read_bytes())
    feed_server.routes["/broken.xml"] = Route(b"<html><p>not a feed</p></html>")
    settings = parse_settings(
        "allow_networks: [127.0.0.0/8]\ncategories: {news: {title: 新闻}}\nsources:\n"
        f"  - {{id: a-good, url: '{feed_server.url('/good.xml')}', category: news}}\n"
        f"  - {{id: b-good, url: '{feed_server.url('/good.xml')}', category: news}}\n"
        f"  - {{id: y-broken, url: '{feed_server.url('/broken.xml')}', category: news}}\n"
        f"  - {{id: z-gone, url: '{feed_server.url('/gone.xml')}', category: news}}\n"
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'site.db'}")
    store.upgrade()
    run_pass(make_context(settings, store))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    site = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(site + "/status")
            rows = page.locator("#sources tbody tr")
            assert rows.count() == 4
            ids = [rows.nth(i).get_attribute("data-source") for i in range(4)]
            assert ids[2:] == ["a-good", "b-good"]
            assert set(ids[:2]) == {"y-broken", "z-gone"}
            healths = page.locator("#sources tbody td.health").all_inner_texts()
            assert healths == ["failing", "failing", "ok", "ok"]
            assert "HTTP 404 Not Found" in rows.nth(ids.index("z-gone")).inner_text()
            page.screenshot(path=str(tmp_path / "status.png"), full_page=True)
            page.click("text=z-gone")
            page.wait_for_url(site + "/status/z-gone")
            assert page.locator("h1").inner_text() == "z-gone"
            history = page.locator("#fetches tbody tr")
            assert history.count() == 1
            assert "HTTP 404 Not Found" in history.first.inner_text()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
