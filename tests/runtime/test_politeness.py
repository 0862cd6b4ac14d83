"""Per-host politeness in a one-shot pass (politeness.py): the turns themselves, then
real servers counting the connections they hold at once while a pass (in one process,
and as ``aggregator fetch --processes 2``) fetches from them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from aggregator.config.settings import parse_settings
from aggregator.model import OutcomeKind, SourceState
from aggregator.runtime.politeness import HostTurns
from aggregator.runtime.scheduler import run_pass
from aggregator.store import HostLimits
from aggregator.store.sql import SqlStore
from tests.feedserver import FeedServer, Request, Route, serving
from tests.ingest.test_update import make_context

ROOT = Path(__file__).resolve().parents[2]
FEED = (
    b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
    b"<item><title>x</title><link>http://p.example/{n}</link></item></channel></rss>"
)


def most_at_once(requests: Iterable[Request]) -> int:
    """The most requests a server was answering at one moment."""
    events = sorted(
        [(r.started, 1) for r in requests] + [(r.finished, -1) for r in requests],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same time
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def states(*urls: str) -> list[SourceState]:
    return [SourceState(source_id=f"s{n}", url=url) for n, url in enumerate(urls)]


def test_at_most_max_concurrent_turns_per_host() -> None:
    turns = HostTurns(states("http://a/1", "http://a/2", "http://b/1"), HostLimits(2, None))
    a, b = turns.host_of(states("http://a/x")[0]), turns.host_of(states("http://b/x")[0])
    assert a is not None
    assert b is not None
    assert [turns.try_start(a) for _ in range(3)] == [True, True, False]
    assert turns.try_start(b)  # another host's turns are its own
    turns.finish(a)
    assert turns.try_start(a)
    assert turns.host_of(states("file:///x.xml")[0]) is None  # no host: no limit


def test_at_most_max_per_minute_starts_per_host() -> None:
    now = [1000.0]
    turns = HostTurns(states("http://a/1"), HostLimits(None, 3), clock=lambda: now[0])
    a = turns.host_of(states("http://a/1")[0])
    assert a is not None
    for _ in range(3):  # at 1000, 1010 and 1020
        assert turns.try_start(a)
        turns.finish(a)  # a finished fetch still counts for its minute
        now[0] += 10
    assert not turns.try_start(a)
    now[0] = 1059.9
    assert not turns.try_start(a)
    now[0] = 1060.0  # a minute after the first start: one more
    assert turns.try_start(a)
    assert not turns.try_start(a)
    now[0] = 1070.0
    assert turns.try_start(a)


def test_a_pass_keeps_to_max_concurrent_per_host(tmp_path: Path) -> None:
    """Twelve sources on one host, four on another, eight workers, two at a time per
    host: before issue 13 the pass opened eight connections to the first host while
    one of them was slow."""
    with serving("127.0.0.1") as busy, serving("127.0.0.2") as other:
        sources = []
        for n in range(12):
            busy.routes[f"/f{n}.xml"] = Route(FEED.replace(b"{n}", b"a%d" % n), delay_seconds=0.2)
            sources.append(f'  - {{id: a{n:02d}, url: "{busy.url(f"/f{n}.xml")}", category: x}}')
        for n in range(4):
            other.routes[f"/f{n}.xml"] = Route(FEED.replace(b"{n}", b"b%d" % n), delay_seconds=0.2)
            sources.append(f'  - {{id: b{n:02d}, url: "{other.url(f"/f{n}.xml")}", category: x}}')
        settings = parse_settings(
            "allow_networks: [127.0.0.0/8]\nper_host: {max_concurrent: 2}\n"
            "defaults: {workers: 8}\ncategories: {x: {title: X}}\nsources:\n"
            + "\n".join(sources)
            + "\n"
        )
        store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
        store.upgrade()
        try:
            outcomes, skipped = run_pass(make_context(settings, store))
        finally:
            store.close()
        assert skipped == []
        assert len(outcomes) == 16
        assert all(o.kind is OutcomeKind.OK for o in outcomes), [o.error for o in outcomes]
        assert most_at_once(busy.requests) == 2
        assert most_at_once(other.requests) <= 2
        # the other host was not held up behind the busy one: both were served at once
        assert most_at_once([*busy.requests, *other.requests]) > 2


@pytest.mark.slow
def test_a_sharded_fetch_command_keeps_to_max_concurrent_per_host(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """``aggregator fetch --processes 2`` over 100 sources of one host: the two processes
    share the host's turns."""
    lines = [
        f"database: sqlite:///{tmp_path / 'a.db'}",
        "allow_networks: [127.0.0.0/8]",
        "per_host: {max_concurrent: 3}",
        "defaults: {workers: 8}",
        "categories: {x: {title: X}}",
        "sources:",
    ]
    for n in range(100):
        feed_server.routes[f"/f{n}.xml"] = Route(
            FEED.replace(b"{n}", b"%d" % n), delay_seconds=0.05
        )
        lines.append(f"  - {{id: s{n:03d}, url: '{feed_server.url(f'/f{n}.xml')}', category: x}}")
    config = tmp_path / "sources.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "aggregator", "--config", str(config)),
            *("--log-level", "info", "fetch", "--processes", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pass of 100 sources in 2 processes" in done.stderr
    assert "100 new, 0 updated, 0 source(s) failed" in done.stdout
    assert len(feed_server.requests) == 100
    assert most_at_once(feed_server.requests) == 3
