"""The soak run's feed server: thousands of growing RSS/Atom feeds, some misbehaving.

    python bench/soakfeeds.py --sources 2000 --bad-fraction 0.1 --seed 7 --port-file F

Runs in its own process (bench/soak.py starts it), so its CPU is not the service's.
Source ``i`` lives at ``/s/{i}``. Every feed gains a new item every 2-5 minutes and
lists its latest 20 (odd feeds, Atom, also list their even neighbour's latest 2, so some
items reach the service from two sources). Titles are Chinese, links carry a unique
``infoCode=NW...``, and ETag / Last-Modified are honoured with 304s.

A fraction of the sources misbehave in one of the ways of tests/hostile.py (``KINDS``);
about half of those that can are intermittent: bad two minutes in four, good otherwise.

The ledger: every item id sent inside a complete, parseable 200 feed body is recorded, so
the driver can compare it with what the service stored. ``GET /_soak/state`` returns the
ledger and per-source answer counts as JSON. No business logic.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import OUTLETS, WORDS

CST = timezone(timedelta(hours=8))
LINK_PREFIX = "http://finance.eastmoney.com/a/NewsShare.html?infoCode=NW"
INFOCODE_BASE = 202407010000000000  # 18 digits; source * 100_000 + serial is added
KEEP_ITEMS = 20  # a feed lists its latest 20 items
NEIGHBOUR_ITEMS = 2  # odd feeds also list their even neighbour's latest 2
CAP_BYTES = 10 * 1024 * 1024  # the service's default max_body_bytes
RETRY_AFTER_SECONDS = 120
RETRY_AFTER_DATE_SECONDS = 150
HANG_SECONDS = 60.0
TRICKLE_SECONDS_PER_BYTE = 0.5
CUT_AFTER_BYTES = 200
RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


@dataclass(frozen=True)
class Kind:
    """One misbehaviour: what it is, whether it can come and go, what the service
    should make of it (an error class, or "ok" when the feed is still usable)."""

    name: str
    what: str
    can_be_intermittent: bool
    expect: str  # an error class name, or "ok"


KINDS: tuple[Kind, ...] = (
    Kind("not-found", "404", True, "HTTPStatusError"),
    Kind("gone", "410 (retired after 3 in a row)", False, "HTTPStatusError"),
    Kind("429-seconds", f"429, Retry-After: {RETRY_AFTER_SECONDS}", True, "HTTPStatusError"),
    Kind("429-date", "429, Retry-After as an HTTP date", True, "HTTPStatusError"),
    Kind("503-seconds", f"503, Retry-After: {RETRY_AFTER_SECONDS}", True, "HTTPStatusError"),
    Kind("503-date", "503, Retry-After as an HTTP date", True, "HTTPStatusError"),
    Kind("html-page", "an HTML page instead of a feed", True, "ParseError"),
    Kind("empty-200", "200 with an empty body", True, "ParseError"),
    Kind("truncated-document", "a whole response, XML stops in an item", True, "ParseError"),
    Kind("cut-mid-body", "connection closed before Content-Length bytes", True, "ConnectError"),
    Kind("reset-mid-body", "TCP reset in the middle of the body", True, "ConnectError"),
    Kind("hang", "accepts, never answers", True, "FetchTimeoutError"),
    Kind("trickle", "one byte every 0.5 s", True, "FetchTimeoutError"),
    Kind("gzip-bomb", "11 KB of gzip inflating to 11 MiB", False, "BodyTooLargeError"),
    Kind("over-cap", "10 MiB + 1 byte, declared in Content-Length", False, "BodyTooLargeError"),
    Kind("over-cap-stream", "10 MiB + 1 byte, no Content-Length", False, "BodyTooLargeError"),
    Kind("not-wellformed", "a bare & and an unclosed tag in one item", False, "ok"),
    Kind("zero-items", "a valid feed listing no items", True, "ok"),
    Kind("redirect-loop", "two URLs redirecting to each other", False, "ConnectError"),
    Kind("moved-301", "301 to the working feed (adopted after 3)", False, "ok"),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}
HEALTHY = "healthy"


@dataclass(frozen=True)
class SourcePlan:
    index: int
    kind: str  # HEALTHY or a Kind name
    intermittent: bool
    period_seconds: int  # a new item every this many seconds
    offset_seconds: int  # in [0, period): when the first new item appears
    initial_items: int

    @property
    def is_atom(self) -> bool:
        return self.index % 2 == 1

    @property
    def source_id(self) -> str:
        return f"soak-{self.index:04d}"

    def is_bad(self, minute: int) -> bool:
        """Misbehaving now? Intermittent sources: two minutes in four, phase by index."""
        if self.kind == HEALTHY:
            return False
        return not self.intermittent or (minute + self.index) % 4 < 2

    def item_count(self, elapsed_seconds: float) -> int:
        return self.initial_items + int(
            (elapsed_seconds + self.offset_seconds) // self.period_seconds
        )

    def item_published(self, serial: int, t0: float) -> float:
        """When item ``serial`` appeared (before t0 for the initial ones)."""
        return t0 + (serial - self.initial_items + 1) * self.period_seconds - self.offset_seconds


def make_plan(sources: int, bad_fraction: float, seed: int) -> list[SourcePlan]:
    """Deterministic for its arguments: bench/soak.py rebuilds the same plan."""
    rng = random.Random(seed)
    bad = sorted(rng.sample(range(sources), round(sources * bad_fraction)))
    kind_of: dict[int, tuple[str, bool]] = {}
    for n, index in enumerate(bad):
        kind = KINDS[n % len(KINDS)]
        # every other source of a kind that can come and go is intermittent
        kind_of[index] = (kind.name, kind.can_be_intermittent and (n // len(KINDS)) % 2 == 0)
    plans = []
    for index in range(sources):
        period = rng.choice((120, 180, 240, 300))
        kind, intermittent = kind_of.get(index, (HEALTHY, False))
        plans.append(
            SourcePlan(index, kind, intermittent, period, rng.randrange(period), rng.randint(5, 20))
        )
    return plans


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Item:
    info_code: str
    title: str
    summary: str
    author: str
    published: datetime

    @property
    def link(self) -> str:
        return LINK_PREFIX + self.info_code


def make_item(plan: SourcePlan, serial: int, t0: float) -> Item:
    rng = random.Random(plan.index * 1_000_003 + serial)
    title = "".join(rng.choices(WORDS, k=rng.randint(4, 8)))
    sentences = ("".join(rng.choices(WORDS, k=rng.randint(6, 12))) for _ in range(3))
    return Item(
        info_code=f"{INFOCODE_BASE + plan.index * 100_000 + serial:018d}",
        title=f"{title}（{plan.index}-{serial}）",
        summary="".join(f"<p>{s}。</p>" for s in sentences),
        author=rng.choice(OUTLETS),
        published=datetime.fromtimestamp(int(plan.item_published(serial, t0)), CST),
    )


def rss_document(plan: SourcePlan, items: list[Item], broken: bool = False) -> str:
    rows = []
    for n, it in enumerate(items):
        # not-wellformed: a bare & and an unclosed <b> in one title; the rest is valid
        title = f"AT&T 与 <b>未闭合 {it.title}" if broken and n == 1 else escape(it.title)
        rows.append(
            f"<item><title>{title}</title><link>{escape(it.link)}</link>"
            f"<pubDate>{format_datetime(it.published)}</pubDate>"
            f"<dc:creator>{escape(it.author)}</dc:creator>"
            f"<description>{escape(it.summary)}</description></item>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>浸泡测试源 {plan.index}</title><link>http://soak.example/{plan.index}</link>"
        f"<description>合成的财经快讯</description>\n{''.join(rows)}</channel></rss>\n"
    )


def atom_document(plan: SourcePlan, items: list[Item], broken: bool = False) -> str:
    updated = items[0].published if items else datetime(2024, 7, 1, tzinfo=CST)
    rows = []
    for n, it in enumerate(items):
        title = f"AT&T 与 <b>未闭合 {it.title}" if broken and n == 1 else escape(it.title)
        rows.append(
            f'<entry><title>{title}</title><link href="{escape(it.link)}"/>'
            f"<id>{escape(it.link)}</id><published>{it.published.isoformat()}</published>"
            f"<updated>{it.published.isoformat()}</updated>"
            f"<author><name>{escape(it.author)}</name></author>"
            f'<summary type="html">{escape(it.summary)}</summary></entry>\n'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>浸泡测试源 {plan.index}</title><id>urn:soak:{plan.index}</id>"
        f'<link href="http://soak.example/{plan.index}"/><updated>{updated.isoformat()}</updated>\n'
        f"{''.join(rows)}</feed>\n"
    )


@dataclass(frozen=True)
class Document:
    body: bytes
    etag: str
    last_modified: str
    item_ids: tuple[str, ...]


HTML_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>系统维护</title></head>"
    "<body><h1>系统维护中，请稍后再试</h1></body></html>"
).encode()
GZIP_BOMB = gzip.compress(b"\0" * (11 * 1024 * 1024))
OVER_CAP = b"<rss>" + b" " * (CAP_BYTES + 1 - 5)


# --------------------------------------------------------------------------- server


class Feeds:
    """The plan, the clock, rendered documents and the ledger of what was sent."""

    def __init__(self, plans: list[SourcePlan]) -> None:
        self.plans = plans
        self.t0 = time.time()
        self.lock = threading.Lock()
        self.cache: dict[int, tuple[tuple[int, ...], Document]] = {}
        self.sent: set[str] = set()
        self.answers: dict[int, Counter[str]] = {p.index: Counter() for p in plans}
        self.stopping = threading.Event()

    def minute(self) -> int:
        return int((time.time() - self.t0) // 60)

    def _items(self, plan: SourcePlan, count: int) -> list[Item]:
        return [make_item(plan, s, self.t0) for s in range(max(0, count - KEEP_ITEMS), count)]

    def document(self, plan: SourcePlan, zero_items: bool = False) -> Document:
        elapsed = time.time() - self.t0
        counts: tuple[int, ...] = (0,) if zero_items else (plan.item_count(elapsed),)
        neighbour = self.plans[plan.index - 1] if plan.is_atom else None
        if neighbour is not None and not zero_items:
            counts += (neighbour.item_count(elapsed),)
        cached = self.cache.get(plan.index)
        if cached is not None and cached[0] == counts:
            return cached[1]
        items = self._items(plan, counts[0])
        if neighbour is not None and len(counts) > 1:
            items += self._items(neighbour, counts[1])[-NEIGHBOUR_ITEMS:]
        items.sort(key=lambda it: it.published, reverse=True)
        render = atom_document if plan.is_atom else rss_document
        text = render(plan, items, broken=plan.kind == "not-wellformed")
        body = text.encode("utf-8")
        newest = max((it.published for it in items), default=datetime.fromtimestamp(self.t0, UTC))
        document = Document(
            body=body,
            etag='"' + hashlib.sha256(body).hexdigest()[:16] + '"',
            last_modified=formatdate(newest.timestamp(), usegmt=True),
            item_ids=tuple("NW" + it.info_code for it in items),
        )
        self.cache[plan.index] = (counts, document)
        return document

    def count(self, plan: SourcePlan, label: str) -> None:
        with self.lock:
            self.answers[plan.index][label] += 1

    def record_sent(self, document: Document) -> None:
        with self.lock:
            self.sent.update(document.item_ids)

    def state(self) -> dict[str, object]:
        with self.lock:
            return {
                "t0": self.t0,
                "sent": sorted(self.sent),
                "answers": {str(i): dict(c) for i, c in self.answers.items() if c},
            }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FeedHTTPServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        feeds = self.server.feeds
        if self.path == "/_soak/state":
            self._send(200, json.dumps(feeds.state()).encode(), "application/json")
            return
        parts = self.path.split("/")  # /s/{i}[/moved-here|/loop]
        if len(parts) < 3 or parts[1] != "s" or not parts[2].isdigit():
            self._send(404, b"")
            return
        index = int(parts[2])
        if index >= len(feeds.plans):
            self._send(404, b"")
            return
        plan = feeds.plans[index]
        tail = parts[3] if len(parts) > 3 else ""
        try:
            self._answer(feeds, plan, tail)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = RSS_TYPE,
        headers: dict[str, str] | None = None,
        length: bool = True,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def _feed(self, feeds: Feeds, plan: SourcePlan, zero_items: bool = False) -> None:
        """A good answer: 304 when the client's validators match, else the whole feed."""
        document = feeds.document(plan, zero_items)
        validators = {"ETag": document.etag, "Last-Modified": document.last_modified}
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if (inm and inm == document.etag) or (not inm and ims == document.last_modified):
            feeds.count(plan, "304")
            self._send(304, b"", headers=validators)
            return
        content_type = ATOM_TYPE if plan.is_atom else RSS_TYPE
        self._send(200, document.body, content_type, headers=validators)
        self.wfile.flush()
        feeds.record_sent(document)  # only once the whole body is written
        feeds.count(plan, "200")

    def _answer(self, feeds: Feeds, plan: SourcePlan, tail: str) -> None:
        kind = plan.kind
        if kind == "moved-301":
            if tail == "moved-here":
                self._feed(feeds, plan)
            else:
                feeds.count(plan, "bad")
                self._send(301, b"", headers={"Location": f"/s/{plan.index}/moved-here"})
            return
        if kind == "redirect-loop":
            feeds.count(plan, "bad")
            target = f"/s/{plan.index}" if tail == "loop" else f"/s/{plan.index}/loop"
            self._send(302, b"", headers={"Location": target})
            return
        if not plan.is_bad(feeds.minute()) or kind == "not-wellformed":
            self._feed(feeds, plan)
            return
        if kind == "zero-items":
            feeds.count(plan, "bad")
            self._feed(feeds, plan, zero_items=True)
            return
        feeds.count(plan, "bad")
        self._misbehave(feeds, plan)

    def _misbehave(self, feeds: Feeds, plan: SourcePlan) -> None:
        kind = plan.kind
        if kind in ("not-found", "gone"):
            self._send(404 if kind == "not-found" else 410, b"")
        elif kind.endswith("-seconds"):
            status = int(kind[:3])
            self._send(status, b"", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        elif kind.endswith("-date"):
            when = formatdate(time.time() + RETRY_AFTER_DATE_SECONDS, usegmt=True)
            self._send(int(kind[:3]), b"", headers={"Retry-After": when})
        elif kind == "html-page":
            self._send(200, HTML_PAGE, "text/html; charset=utf-8")
        elif kind == "empty-200":
            self._send(200, b"")
        elif kind == "truncated-document":
            body = feeds.document(plan).body
            self._send(200, body[: len(body) // 2])
        elif kind in ("cut-mid-body", "reset-mid-body"):
            self._cut(feeds.document(plan).body, reset=kind == "reset-mid-body")
        elif kind == "hang":
            self.close_connection = True
            feeds.stopping.wait(HANG_SECONDS)
        elif kind == "trickle":
            self._trickle(feeds, feeds.document(plan).body)
        elif kind == "gzip-bomb":
            self._send(200, GZIP_BOMB, headers={"Content-Encoding": "gzip"})
        elif kind == "over-cap":
            self._send(200, OVER_CAP)
        elif kind == "over-cap-stream":
            self._send(200, OVER_CAP, length=False)
        else:
            raise AssertionError(f"unknown kind {kind}")

    def _cut(self, body: bytes, reset: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", RSS_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:CUT_AFTER_BYTES])
        self.wfile.flush()
        if reset:  # linger 0: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _trickle(self, feeds: Feeds, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", RSS_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if feeds.stopping.wait(TRICKLE_SECONDS_PER_BYTE):
                return


class FeedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections in a burst

    def __init__(self, port: int, feeds: Feeds) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.feeds = feeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--bad-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    args = parser.parse_args(argv)
    feeds = Feeds(make_plan(args.sources, args.bad_fraction, args.seed))
    httpd = FeedHTTPServer(args.port, feeds)

    def stop(_signum: int, _frame: object) -> None:
        feeds.stopping.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = httpd.server_address[1]
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(args.port_file)
    print(f"soak feeds: {args.sources} sources on http://127.0.0.1:{port}/s/N", flush=True)
    httpd.serve_forever(poll_interval=0.5)
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
