"""The HTML pages in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven
by Playwright, against the app served by uvicorn on a real socket."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from aggregator.config.settings import parse_settings
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES, Seed
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPT_TITLE = "<script>alert('xss')</script> 危险标题"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path, feed_server: FeedServer) -> Iterator[str]:
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    hostile = (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>h"
        "</title><link>http://h.example/</link><description>d</description><item>"
        "<title>&amp;lt;script&amp;gt;alert('xss')&amp;lt;/script&amp;gt; 危险标题"
        "</title><link>http://h.example/1</link><description>&lt;p&gt;正文&lt;img "
        "src=x onerror=alert(1)&gt;&lt;/p&gt;</description></item></channel></rss>"
    )
    feed_server.routes["/hostile.xml"] = Route(hostile.encode())
    settings = parse_settings(f"""
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
  risky: {{title: 风险测试}}
sources:
  - {{id: seed, url: "{feed_server.url("/seed.rss")}", category_from: author}}
  - {{id: hostile, url: "{feed_server.url("/hostile.xml")}", category: risky}}
""")
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
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_pages_in_a_real_browser(site: str, seed: Seed, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))

        page.goto(site + "/")
        assert page.title() == "财经新闻聚合"
        # the Content-Security-Policy lets the pages' own stylesheet apply
        style = "getComputedStyle(document.querySelector('header.site')).borderBottomStyle"
        assert page.evaluate(style) == "solid"
        headings = page.locator("section h2").all_inner_texts()
        assert "上海证券报新闻" in headings
        assert "风险测试" in headings
        page.screenshot(path=str(tmp_path / "home.png"), full_page=True)

        page.click("text=上海证券报新闻")  # links work
        page.wait_for_url(site + "/category/shanghaizhengquanbao.html")
        assert page.locator("h1").inner_text() == "上海证券报新闻"
        alternates = page.locator("head link[rel=alternate]")
        assert alternates.count() == 3
        types = {alternates.nth(i).get_attribute("type") for i in range(3)}
        assert types == {"application/rss+xml", "application/atom+xml", "application/feed+json"}
        # the pages themselves load nothing from elsewhere (article images are content)
        assert [url for url in requested if not url.startswith(site)] == []
        feed = page.request.get(alternates.nth(0).get_attribute("href") or "")
        assert feed.ok
        assert b"<rss" in feed.body()

        page.click(f"text={seed.title}")
        assert page.locator("article h1").inner_text() == seed.title
        assert "（文章来源：上海证券报）" in page.locator("article").inner_text()

        page.goto(site + "/category/risky.html")
        link = page.locator("ul.items li a").first
        assert link.inner_text() == SCRIPT_TITLE  # shown as text, not run
        link.click()
        assert page.locator("article h1").inner_text() == SCRIPT_TITLE
        page.screenshot(path=str(tmp_path / "item.png"), full_page=True)
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= 390  # readable on a phone: no sideways scrolling
        page.goto(site + "/category/nope.html")  # a 404 page is styled too
        assert page.evaluate(style) == "solid"
        browser.close()
    assert dialogs == []  # no script ran
    assert [text for text in console if "Content Security Policy" in text] == []
