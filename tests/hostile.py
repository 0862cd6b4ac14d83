"""The hostile-source corpus: every way a source can be broken, as a table of cases that
a real HTTP server on 127.0.0.1 plays (tests/test_hostile.py runs it; bench/reliability.py
reports it in docs/reliability.md).

Each case installs its routes on a ``FeedServer`` and says what must come of one fetch:
``stored`` items (the feed was usable), or an error of ``error_class`` (with the HTTP
``status`` when there is one) whose one-line message matches ``match``. Static bodies live
in tests/fixtures/hostile/ (written by make_corpus.py there)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from tests.feedserver import FeedServer, Route

CORPUS = Path(__file__).resolve().parent / "fixtures" / "hostile"
FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"
CAP = 10 * 1024 * 1024  # the default max_body_bytes
RETRY_AFTER_SECONDS = 3600
BIG_FEED_ITEMS = 20_000


@dataclass(frozen=True)
class Case:
    name: str
    what: str  # the misbehaviour, for the report
    setup: Callable[[FeedServer], str]  # installs routes, returns the source's URL
    stored: int | None = None  # items this source stores; None: the fetch must fail
    error_class: str | None = None
    status: int | None = None
    match: str = ""  # a regex the error line (or the stored titles, joined) must match
    backoff: str = "doubling"  # doubling | retry-after | none

    @property
    def fails(self) -> bool:
        return self.stored is None


def body(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def serve(path: str, route: Route) -> Callable[[FeedServer], str]:
    def setup(server: FeedServer) -> str:
        server.routes[path] = route
        return server.url(path)

    return setup


def static(name: str, content_type: str = "application/rss+xml; charset=utf-8") -> Route:
    return Route(body(name), content_type=content_type)


def big_feed(items: int) -> bytes:
    entries = "".join(
        f"<item><title>第{n}条 大批量</title><link>http://big.example/NewsShare.html?infoCode="
        f"NW2022{n:014d}</link><pubDate>Tue, 25 Jan 2022 15:24:31 +0800</pubDate>"
        f"<description>正文 {n}</description></item>"
        for n in range(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>big</title>'
        f"<link>http://big.example/</link><description>d</description>{entries}</channel></rss>"
    ).encode()


def xxe(name: str) -> Callable[[FeedServer], str]:
    def setup(server: FeedServer) -> str:
        server.routes["/xxe-target"] = Route(b"SECRET-FROM-XXE", content_type="text/plain")
        text = body(name).replace(b"{xxe_url}", server.url("/xxe-target").encode())
        server.routes["/" + name] = Route(text)
        return server.url("/" + name)

    return setup


def redirect(status: int) -> Callable[[FeedServer], str]:
    def setup(server: FeedServer) -> str:
        server.routes[f"/moved-{status}"] = Route(
            status=status, validators=False, headers={"Location": server.url(f"/to-{status}")}
        )
        server.routes[f"/to-{status}"] = static("good.xml")
        return server.url(f"/moved-{status}")

    return setup


def redirect_loop(server: FeedServer) -> str:
    server.routes["/loop-a"] = Route(
        status=302, validators=False, headers={"Location": server.url("/loop-b")}
    )
    server.routes["/loop-b"] = Route(
        status=302, validators=False, headers={"Location": server.url("/loop-a")}
    )
    return server.url("/loop-a")


def tls_failure(server: FeedServer) -> str:
    server.routes["/tls"] = static("good.xml")
    return f"https://127.0.0.1:{server.port}/tls"  # TLS spoken to a plain-HTTP port


def retry_after(status: int, value: str) -> Route:
    return Route(status=status, validators=False, headers={"Retry-After": value})


def http_date_in(seconds: int) -> str:
    import time

    return formatdate(time.time() + seconds, usegmt=True)


GOOD_TITLES = "第1条新闻"

CASES: list[Case] = [
    Case("good", "a well-formed RSS 2.0 feed", serve("/good.xml", static("good.xml")), 3),
    Case(
        "not-wellformed",
        "bare & and an unclosed tag inside an item",
        serve("/nwf.xml", static("not-wellformed.xml")),
        3,
        match="AT&T",
    ),
    Case(
        "after-root",
        "a comment and a processing instruction after </rss>, in a feed read leniently",
        serve(
            "/after-root.xml",
            Route(body("not-wellformed.xml") + b"\n<!-- cached 2022-01-25 -->\n<?cache hit?>\n"),
        ),
        3,
        match="AT&T",
    ),
    Case(
        "html-page",
        "an HTML maintenance page instead of a feed",
        serve("/html", static("html-page.html", "text/html; charset=utf-8")),
        error_class="ParseError",
        match="HTML page, not a feed",
    ),
    Case(
        "empty-200",
        "200 with an empty body",
        serve("/empty", Route(b"")),
        error_class="ParseError",
        match="empty body",
    ),
    Case(
        "truncated-document",
        "a complete response whose XML stops inside an item",
        serve("/trunc.xml", static("truncated.xml")),
        error_class="ParseError",
        match="truncated",
    ),
    Case(
        "truncated-transfer",
        "the connection closes cleanly before Content-Length bytes",
        serve("/cut", Route(body("good.xml"), validators=False, cut_after_bytes=200)),
        error_class="ConnectError",
        match="connection closed before the whole body arrived",
    ),
    Case(
        "reset-mid-body",
        "a TCP reset after 200 body bytes",
        serve("/reset", Route(body("good.xml"), validators=False, cut_after_bytes=200, reset=True)),
        error_class="ConnectError",
        match="connection reset",
    ),
    Case(
        "charset-wrong-header",
        "UTF-8 body, Content-Type says ISO-8859-1",
        serve(
            "/wrong-cs",
            static("charset-wrong-header.xml", "text/xml; charset=iso-8859-1"),
        ),
        1,
        match="乱码测试：沪深两市",
    ),
    Case(
        "charset-missing-gbk",
        "GBK body with no charset anywhere",
        serve("/gbk-bare", static("charset-missing-gbk.xml", "text/xml")),
        1,
        match="国产编码：上证指数收涨",
    ),
    Case(
        "gb18030",
        "GB18030 with a four-byte character",
        serve("/gb18030", static("gb18030.xml", "text/xml")),
        1,
        match="四字节字符𠀀与㐀",
    ),
    Case(
        "gbk-declared-gb2312",
        "GBK characters in a body declared GB2312",
        serve("/gb2312", static("gbk-declared-gb2312.xml", "text/xml")),
        1,
        match="镕基与喆",
    ),
    Case(
        "big5",
        "Big5",
        serve("/big5", static("big5.xml", "text/xml")),
        1,
        match="臺灣證券交易所",
    ),
    Case(
        "dates",
        "an invalid, a missing, an empty and a far-future date",
        serve("/dates", static("dates.xml")),
        4,
    ),
    Case(
        "no-guid-no-link",
        "items with neither guid nor link",
        serve("/noid", static("no-guid-no-link.xml")),
        3,
    ),
    Case(
        "repeated-guid",
        "the same guid three times in one feed",
        serve("/repeat", static("repeated-guid.xml")),
        1,
    ),
    Case(
        "control-chars",
        "control characters, U+FFFE and a lone surrogate reference",
        serve("/ctrl", static("control-chars.xml")),
        1,
        match="控制字符与代理",
    ),
    Case(
        "big-feed",
        f"a feed of {BIG_FEED_ITEMS:,} items",
        serve("/big.xml", Route(big_feed(BIG_FEED_ITEMS))),
        BIG_FEED_ITEMS,
    ),
    Case(
        "over-cap",
        "a body one byte over the 10 MiB cap",
        serve("/huge", Route(b" " * (CAP + 1))),
        error_class="BodyTooLargeError",
        match="over the cap",
    ),
    Case(
        "gzip-bomb",
        "12 KB of gzip that inflates to 11 MiB",
        serve("/bomb", Route(gzip.compress(b"\0" * (11 * 1024 * 1024)), precompressed="gzip")),
        error_class="BodyTooLargeError",
        match="decompressed body is over the cap",
    ),
    Case(
        "billion-laughs",
        "nested entity expansion (billion laughs)",
        serve("/lol", static("billion-laughs.xml")),
        1,
        match="^&lol9;$",  # kept as text, never expanded
    ),
    Case(
        "xxe-file",
        "an external entity naming file:///etc/passwd",
        xxe("xxe-file.xml"),
        1,
        match="^&xxe;$",
    ),
    Case(
        "xxe-url",
        "an external entity naming a URL",
        xxe("xxe-url.xml"),
        1,
        match="^&xxe;$",
    ),
    Case(
        "xxe-parameter",
        "an external parameter entity naming a URL",
        xxe("xxe-parameter.xml"),
        1,
    ),
    Case(
        "trickle",
        "a byte every half second: each read is in time, the whole never is",
        serve("/trickle", Route(body("good.xml"), validators=False, trickle_seconds_per_byte=0.5)),
        error_class="FetchTimeoutError",
        match="total deadline",
    ),
    Case(
        "slow-headers",
        "a header line a byte at a time, every half second",
        serve("/slow-headers", Route(drip=b"x", drip_seconds=0.5)),
        error_class="FetchTimeoutError",
        match="total deadline of 3s passed before the response headers arrived",
    ),
    Case(
        "header-flood",
        "a header every half second, never the end of them",
        serve("/header-flood", Route(drip=b"X-More: 1\r\n", drip_seconds=0.5)),
        error_class="FetchTimeoutError",
        match="total deadline of 3s passed before the response headers arrived",
    ),
    Case(
        "no-answer",
        "accepts the connection and never answers",
        serve("/hang", Route(hang=True)),
        error_class="FetchTimeoutError",
        match="read timeout",
    ),
    Case(
        "dns-failure",
        "a host name that does not resolve",
        lambda server: "http://no-such-host.invalid/feed.xml",
        error_class="ConnectError",
        match="does not resolve",
    ),
    Case(
        "tls-failure",
        "TLS spoken to a server that does not speak it",
        tls_failure,
        error_class="ConnectError",
        match="TLS failure",
    ),
    Case(
        "redirect-loop",
        "two URLs redirecting to each other",
        redirect_loop,
        error_class="ConnectError",
        match="redirect loop",
    ),
    Case(
        "redirect-to-metadata",
        "302 to the cloud metadata service (169.254.169.254)",
        serve(
            "/to-metadata",
            Route(
                status=302,
                validators=False,
                headers={"Location": "http://169.254.169.254/latest/meta-data/"},
            ),
        ),
        error_class="ConnectError",
        match="refused: 169.254.169.254:80: 169.254.169.254 is link-local or a cloud metadata",
    ),
    Case("moved-301", "301 to a working feed", redirect(301), 3, backoff="none"),
    Case("moved-308", "308 to a working feed", redirect(308), 3, backoff="none"),
    Case("moved-302", "302 to a working feed", redirect(302), 3, backoff="none"),
    Case(
        "not-found",
        "404",
        serve("/404", Route(status=404, validators=False)),
        error_class="HTTPStatusError",
        status=404,
        match="HTTP 404",
    ),
    Case(
        "gone",
        "410 (retired after 3 in a row; see test_410_retires)",
        serve("/410", Route(status=410, validators=False)),
        error_class="HTTPStatusError",
        status=410,
        match="HTTP 410",
    ),
    Case(
        "429-seconds",
        f"429 with Retry-After: {RETRY_AFTER_SECONDS}",
        serve("/429s", retry_after(429, str(RETRY_AFTER_SECONDS))),
        error_class="HTTPStatusError",
        status=429,
        match="HTTP 429",
        backoff="retry-after",
    ),
    Case(
        "429-date",
        "429 with Retry-After as an HTTP date an hour ahead",
        lambda server: serve("/429d", retry_after(429, http_date_in(RETRY_AFTER_SECONDS)))(server),
        error_class="HTTPStatusError",
        status=429,
        match="HTTP 429",
        backoff="retry-after",
    ),
    Case(
        "503-seconds",
        f"503 with Retry-After: {RETRY_AFTER_SECONDS}",
        serve("/503s", retry_after(503, str(RETRY_AFTER_SECONDS))),
        error_class="HTTPStatusError",
        status=503,
        match="HTTP 503",
        backoff="retry-after",
    ),
    Case(
        "503-date",
        "503 with Retry-After as an HTTP date an hour ahead",
        lambda server: serve("/503d", retry_after(503, http_date_in(RETRY_AFTER_SECONDS)))(server),
        error_class="HTTPStatusError",
        status=503,
        match="HTTP 503",
        backoff="retry-after",
    ),
    Case(
        "zero-items",
        "200 with a valid feed of no items (see test_zero_items_is_flagged)",
        serve("/zero", static("zero-items.xml")),
        0,
    ),
]
