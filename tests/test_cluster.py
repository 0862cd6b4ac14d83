"""Several processes, one schedule, on the real PostgreSQL: ``aggregator worker`` and
``aggregator serve`` as real subprocesses against a real feed server.

* three workers, 300 sources, several intervals: each source fetched once per interval
  (requests counted at the server: no double fetch, no miss), items stored once;
  housekeeping ran once per period across the three, and what it pruned stayed gone;
* a worker SIGKILLed mid-fetch: its sources are fetched by the others within the lease
  plus one interval, and nothing is lost or duplicated;
* two web replicas and a worker: a new item is in both replicas' next answers, and a
  reader's old ETag never gets a stale 304.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from aggregator.store.sql import SqlStore
from tests.conftest import ROOT, drop_postgres_database, fresh_postgres_database
from tests.feedserver import FeedServer, Route, serving

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INTERVAL = 10  # seconds
LEASE = 6  # seconds
TICK_SLACK = 2.5  # a due source is claimed at the next 1 s tick; requests take a moment
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def feed(n: int, extra: str = "") -> bytes:
    """Source n's feed: its own item, one shared with its neighbour, and one three days
    old (retention prunes it; the feed keeps listing it)."""
    old = format_datetime(datetime.now(UTC) - timedelta(days=3))
    items = [
        f"<item><title>源{n}的新闻</title><link>http://c.example/NewsShare.html?infoCode="
        f"NW{n:018d}</link></item>",
        f"<item><title>共享{n // 2}</title><link>http://c.example/NewsShare.html?infoCode="
        f"NS{n // 2:018d}</link></item>",
        f"<item><title>旧闻{n}</title><link>http://c.example/NewsShare.html?infoCode="
        f"NO{n:018d}</link><pubDate>{old}</pubDate></item>",
    ]
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>源{n}</title><link>http://c.example/{n}</link><description>d</description>"
        + "".join(items)
        + extra
        + "</channel></rss>"
    ).encode()


def write_config(path: Path, server: FeedServer, count: int, housekeeping: str = "1h") -> None:
    sources = "\n".join(
        f'  - {{id: s{n:03d}, url: "{server.url(f"/f{n}.xml")}", category: news}}'
        for n in range(count)
    )
    path.write_text(
        f"""
retention: 1d
allow_networks: [127.0.0.0/8]
housekeeping: {{every: {housekeeping}}}
defaults: {{interval: {INTERVAL}s, jitter_fraction: 0, lease: {LEASE}s, workers: 8}}
categories:
  news: {{title: 新闻}}
sources:
{sources}
""",
        encoding="utf-8",
    )


@pytest.fixture
def cluster_db(postgres_admin_url: str) -> Iterator[str]:
    url = fresh_postgres_database(postgres_admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(postgres_admin_url, url)


class Processes:
    """Subprocesses of the CLI, each logging to its own file, all stopped at the end."""

    def __init__(self, tmp_path: Path, config: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.config = config
        self.env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def run(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "aggregator", "--config", str(self.config), *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(self.config), *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.running.append((name, process))
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def stop_all(self) -> dict[str, int | None]:
        for _, process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.running:
            try:
                codes[name] = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes


def request_times(server: FeedServer) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    with server.lock:
        for request in server.requests:
            times.setdefault(request.path, []).append(request.started)
    return {path: sorted(found) for path, found in times.items()}


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"gave up waiting: {what}")


def stored_codes(url: str) -> list[str]:
    store = SqlStore(url)
    try:
        return [item.stable_id for item in store.list_items(limit=100_000)]
    finally:
        store.close()


def test_three_workers_share_one_schedule(cluster_db: str, tmp_path: Path) -> None:
    count = 300
    with serving() as server:
        for n in range(count):
            server.routes[f"/f{n}.xml"] = Route(feed(n))
        config = tmp_path / "sources.yaml"
        write_config(config, server, count, housekeeping="4s")
        procs = Processes(tmp_path, config, cluster_db)
        try:
            procs.run("db", "upgrade")
            for index in range(3):
                procs.start(f"worker{index}", "worker")
            # the start-up spread places first fetches over one interval; then 3 more
            time.sleep(INTERVAL * 4 + 3)
        finally:
            codes = procs.stop_all()
    assert set(codes.values()) == {0}, {name: procs.log(name)[-2000:] for name in codes}
    observed = request_times(server)
    assert len(observed) == count, "every source was fetched"
    start = min(t[0] for t in observed.values())
    end = max(t[-1] for t in observed.values())
    for path, times in observed.items():
        spacing = gaps(times)
        assert spacing, path
        assert min(spacing) >= INTERVAL - TICK_SLACK, (path, spacing)  # no double fetch
        assert max(spacing) <= INTERVAL + TICK_SLACK, (path, spacing)  # no miss
        assert end - times[-1] <= INTERVAL + TICK_SLACK, (path, "stopped early")
        assert times[0] - start <= INTERVAL + TICK_SLACK, (path, "started late")
    # items once: each source's own item and the shared ones; old ones pruned, not back
    codes_stored = stored_codes(cluster_db)
    assert len(codes_stored) == len(set(codes_stored))
    expected = {f"NW{n:018d}" for n in range(count)} | {f"NS{n // 2:018d}" for n in range(count)}
    assert set(codes_stored) == expected
    # housekeeping: once per period for the whole cluster, in whichever worker won
    runs = sorted(
        datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
        for name in ("worker0", "worker1", "worker2")
        for line in procs.log(name).splitlines()
        if "housekeeping:" in line and (found := LOG_TIME.match(line))
    )
    assert len(runs) >= 5, runs
    assert min(gaps([r.timestamp() for r in runs])) >= 4 - 0.5, runs


def test_a_killed_workers_sources_are_taken_over(cluster_db: str, tmp_path: Path) -> None:
    count = 60
    with serving() as server:
        for n in range(count):
            # slow answers, no validators: fetches are in flight most of the time
            server.routes[f"/f{n}.xml"] = Route(feed(n), delay_seconds=1.5, validators=False)
        config = tmp_path / "sources.yaml"
        write_config(config, server, count)
        procs = Processes(tmp_path, config, cluster_db)
        try:
            procs.run("db", "upgrade")
            victim = procs.start("victim", "worker")
            for index in range(2):
                procs.start(f"worker{index}", "worker")
            time.sleep(INTERVAL + 4)
            victim.send_signal(signal.SIGKILL)  # mid-fetch: each takes 1.5 s
            killed_at = time.monotonic()
            victim.wait(10)
            time.sleep(INTERVAL * 2 + LEASE + 4)
        finally:
            codes = procs.stop_all()
    assert codes["victim"] == -signal.SIGKILL
    assert codes["worker0"] == codes["worker1"] == 0
    for path, times in request_times(server).items():
        before = [t for t in times if t <= killed_at]
        after = [t for t in times if t > killed_at]
        assert before, path
        assert after, (path, "never fetched again after the kill")
        # within the lease plus one interval of its last fetch before the kill
        assert after[0] - before[-1] <= INTERVAL + LEASE + TICK_SLACK, (path, times)
        assert max(gaps(after), default=0) <= INTERVAL + TICK_SLACK, (path, times)
    codes_stored = stored_codes(cluster_db)
    assert len(codes_stored) == len(set(codes_stored))
    expected = {f"NW{n:018d}" for n in range(count)} | {f"NS{n // 2:018d}" for n in range(count)}
    assert set(codes_stored) >= expected  # nothing lost (old items pruned or not yet)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, etag: str | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers.get("ETag", "")
    except urllib.error.HTTPError as e:
        e.close()
        return e.code, b"", e.headers.get("ETag", "")


def test_two_web_replicas_and_a_worker_never_serve_stale(cluster_db: str, tmp_path: Path) -> None:
    count = 5
    with serving() as server:
        for n in range(count):
            server.routes[f"/f{n}.xml"] = Route(feed(n))
        config = tmp_path / "sources.yaml"
        write_config(config, server, count)
        procs = Processes(tmp_path, config, cluster_db)
        ports = [free_port(), free_port()]
        try:
            procs.run("db", "upgrade")
            procs.start("worker", "worker")
            for index, port in enumerate(ports):
                procs.start(f"web{index}", "serve", "--port", str(port), "--workers", "1")
            urls = [f"http://127.0.0.1:{port}/feeds/news.xml" for port in ports]

            def all_fetched() -> bool:
                try:
                    return all(f"NW{n:018d}".encode() in get(u)[1] for u in urls for n in [4])
                except OSError:
                    return False

            wait_for(all_fetched, "both replicas serving the first fetch")
            etags = [get(u)[2] for u in urls]
            assert all(get(u, e)[0] == 304 for u, e in zip(urls, etags, strict=True))

            server.routes["/f0.xml"] = Route(
                feed(0, "<item><title>刚刚发布</title><link>http://c.example/new</link></item>")
            )
            wait_for(
                lambda: "http://c.example/new" in stored_links(cluster_db),
                "the worker storing the new item",
                seconds=INTERVAL * 3,
            )
            for url, etag in zip(urls, etags, strict=True):  # each replica's next request
                status, body, _ = get(url, etag)
                assert status == 200, url  # never a stale 304
                assert "刚刚发布".encode() in body
        finally:
            codes = procs.stop_all()
    assert set(codes.values()) == {0}, {name: procs.log(name)[-2000:] for name in codes}


def stored_links(url: str) -> set[str]:
    store = SqlStore(url)
    try:
        return {item.link or "" for item in store.list_items(limit=1000)}
    finally:
        store.close()
