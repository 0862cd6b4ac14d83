"""The HTML pages in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven
by Playwright, against the app served by uvicorn on a real socket: navigation, escaping,
a phone's width, text contrast in light and dark mode, and the CJK font stack."""

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
    more = "".join(
        f"<item><title>更多{day}</title><link>http://m.example/{day}</link><dc:creator>上海证券报"
        f"</dc:creator><pubDate>{day:02d} Jan 2022 10:00:00 +0800</pubDate></item>"
        for day in (20, 21)
    )
    feed_server.routes["/more.xml"] = Route(
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0' xmlns:dc='http://purl.org/"
        "dc/elements/1.1/'><channel><title>m</title><link>http://m.example/</link>"
        f"<description>d</description>{more}</channel></rss>".encode()
    )
    settings = parse_settings(f"""
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
  risky: {{title: 风险测试}}
sources:
  - {{id: seed, url: "{feed_server.url("/seed.rss")}", category_from: author}}
  - {{id: hostile, url: "{feed_server.url("/hostile.xml")}", category: risky}}
  - {{id: more, url: "{feed_server.url("/more.xml")}", category_from: author}}
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


# Every element with text of its own, and every :visited colour in effect, against the
# background it is drawn on (the nearest ancestor's, else the canvas): WCAG 2 contrast.
CONTRASTS = """() => {
  const rgb = (css) => {
    const p = css.match(/[\\d.]+/g).map(Number);
    return { c: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 };
  };
  const luminance = (c) => {
    const [r, g, b] = c.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (x, y) => {
    const [hi, lo] = [luminance(x), luminance(y)].sort((a, b) => b - a);
    return (hi + 0.05) / (lo + 0.05);
  };
  const probe = (style) => {
    const el = document.createElement("span");
    Object.assign(el.style, style);
    document.body.appendChild(el);
    const out = getComputedStyle(el);
    const color = { color: out.color, background: out.backgroundColor };
    el.remove();
    return color;
  };
  const canvas = rgb(probe({ backgroundColor: "Canvas" }).background).c;
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const b = rgb(getComputedStyle(e).backgroundColor);
      if (b.a > 0) return b.c;
    }
    return canvas;
  };
  const results = [];
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const text = el.textContent.trim().slice(0, 30);
    const color = rgb(getComputedStyle(el).color).c;
    results.push([el.tagName + " " + text, ratio(color, background(el))]);
  }
  const rules = (list) => [...list].flatMap((r) => {
    if (r.selectorText !== undefined) return [r];  // a style rule
    if (r.media && !matchMedia(r.media.mediaText).matches) return [];
    return r.cssRules ? rules(r.cssRules) : [];
  });
  for (const sheet of document.styleSheets) {
    for (const rule of rules(sheet.cssRules)) {
      if (!rule.selectorText || !rule.selectorText.includes(":visited")) continue;
      const color = rgb(probe({ color: rule.style.color }).color).c;
      results.push([rule.selectorText, ratio(color, background(document.body))]);
    }
  }
  return results;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_has_contrast_in_light_and_dark_mode(site: str, scheme: str) -> None:
    """WCAG AA: 4.5:1 for text. Dark mode kept the light scheme's link blue (2.5:1)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(color_scheme=scheme)
        page.goto(site + "/")
        item = page.locator("section.latest li a").first.get_attribute("href") or ""
        measured: dict[str, float] = {}
        for path in ("/", "/category/shanghaizhengquanbao.html", item.removeprefix(site)):
            page.goto(site + path)
            for what, ratio in page.evaluate(CONTRASTS):
                measured[f"{path}: {what}"] = ratio
        browser.close()
    assert any(":visited" in what for what in measured)
    assert sum("/category/" in what for what in measured) > 5
    low = {what: round(ratio, 2) for what, ratio in measured.items() if ratio < 4.5}
    assert low == {}


def test_chinese_has_a_font_on_every_system(site: str) -> None:
    """The font stack names the Simplified Chinese sans fonts macOS, Windows, Linux and
    Android ship, before the generic family: a system without PingFang or YaHei still
    draws Han characters in a font meant for them."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(site + "/")
        families = {
            selector: [
                name.strip().strip('"')
                for name in page.eval_on_selector(
                    selector, "e => getComputedStyle(e).fontFamily"
                ).split(",")
            ]
            for selector in ("body", "h2", "li a", ".meta", "footer")
        }
        browser.close()
    for selector, stack in families.items():
        assert stack[-1] == "sans-serif", selector
        for family in (
            "PingFang SC",  # macOS, iOS
            "Microsoft YaHei",  # Windows
            "Noto Sans CJK SC",  # Linux (fonts-noto-cjk), ChromeOS
            "Source Han Sans SC",  # the same design under Adobe's name
            "WenQuanYi Micro Hei",  # older Linux desktops
            "Noto Sans SC",  # Android, and the web-font name
            "Droid Sans Fallback",  # older Android
        ):
            assert family in stack, (selector, family)


def test_home_latest_to_item_and_on_to_the_next_in_a_browser(site: str, seed: Seed) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(site + "/")
        assert page.locator("section h2").first.inner_text() == "最新"
        latest = page.locator("section.latest li")
        assert latest.count() == 4  # every item of every outlet
        lines = latest.all_inner_texts()
        assert all("UTC+08:00" in line for line in lines)
        assert f"{seed.title} · 2022-01-25 15:24 UTC+08:00 · 上海证券报" in lines
        page.goto(site + "/category/shanghaizhengquanbao.html")
        listed = page.locator("ul.items li a").all_inner_texts()
        assert listed == [seed.title, "更多21", "更多20"]  # newest first
        page.click(f"text={listed[0]}")
        assert page.locator("head link[rel=alternate]").count() == 3  # its category's feeds
        walked = [page.locator("article h1").inner_text()]
        while page.locator("a[rel=next]").count():
            page.click("a[rel=next]")
            walked.append(page.locator("article h1").inner_text())
        assert walked == listed
        page.click("a[rel=prev]")
        assert page.locator("article h1").inner_text() == listed[1]
        browser.close()
