"""Following the config file while running (reload.py), and the admin endpoints that
trigger a fetch or a reload: real files, a real store (SQLite and PostgreSQL), the real
app, and one real ``aggregator run`` process."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.config.reload import ConfigWatcher, ReloadResult
from aggregator.config.settings import load_settings
from aggregator.ingest.fetcher import Fetcher
from aggregator.ingest.update import Context
from aggregator.runtime.scheduler import Dispatcher
from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES, ROOT
from tests.feedserver import FeedServer, Route

TOKEN = "s3cret-admin-token-0123"

CONFIG = """
server: {{admin_token: {token}}}
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: {title}, name: 上海证券报}}
sources:
{sources}
"""


def write_config(
    path: Path, sources: dict[str, str], title: str = "上海证券报新闻", interval: str = "1h"
) -> None:
    lines = "\n".join(
        f'  - {{id: {sid}, url: "{url}", category_from: author, interval: {interval}}}'
        for sid, url in sources.items()
    )
    text = CONFIG.format(token=TOKEN, title=title, sources=lines)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def served(feed_server: FeedServer) -> dict[str, str]:
    for name in ("seed.rss", "rss20.xml", "atom10.xml"):
        feed_server.routes["/" + name] = Route((FIXTURES / name).read_bytes())
    return {
        "seed": feed_server.url("/seed.rss"),
        "rss20": feed_server.url("/rss20.xml"),
        "atom10": feed_server.url("/atom10.xml"),
    }


@pytest.fixture
def running(
    tmp_path: Path, store: SqlStore, served: dict[str, str]
) -> Iterator[tuple[Path, ConfigWatcher, Dispatcher, TestClient]]:
    """A dispatcher (not ticking) and the app, both following one config file."""
    path = tmp_path / "sources.yaml"
    write_config(path, {"seed": served["seed"], "rss20": served["rss20"]})
    settings = load_settings(path)
    ctx = Context(settings=settings, store=store, fetcher=Fetcher("t"), owner="test")
    dispatcher = Dispatcher(ctx)
    dispatcher.apply_settings(settings)  # the schedule follows the file, as at start
    watcher = ConfigWatcher(path, settings)
    watcher.subscribe(dispatcher.apply_settings)
    client = TestClient(create_app(settings, store, watcher=watcher))
    yield path, watcher, dispatcher, client
    dispatcher.stop()
    ctx.fetcher.close()


def states(store: SqlStore) -> dict[str, tuple[bool, datetime]]:
    return {s.source_id: (s.enabled, s.next_due_at) for s in store.list_source_status()}


def test_valid_change_reaches_the_schedule_and_the_app(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient],
    store: SqlStore,
    served: dict[str, str],
) -> None:
    path, watcher, dispatcher, client = running
    before = client.get("/feeds/shanghaizhengquanbao.xml")
    assert watcher.check() is ReloadResult.UNCHANGED
    write_config(path, {"seed": served["seed"], "atom10": served["atom10"]}, title="上证报新闻")
    assert watcher.check() is ReloadResult.APPLIED
    assert watcher.status().generation == 2
    seen = states(store)
    assert seen["atom10"][0] is True  # new source scheduled
    assert seen["rss20"][0] is False  # removed source stops
    assert [s.id for s in dispatcher.ctx.settings.sources] == ["seed", "atom10"]
    after = client.get(
        "/feeds/shanghaizhengquanbao.xml", headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200  # retitled: never a stale 304
    assert "上证报新闻" in after.text


def test_shorter_interval_applies_at_once(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient],
    store: SqlStore,
    served: dict[str, str],
) -> None:
    path, watcher, _dispatcher, _client = running
    later = datetime.now(UTC) + timedelta(hours=1)
    store.set_due_times({"seed": later})
    write_config(path, {"seed": served["seed"], "rss20": served["rss20"]}, interval="1m")
    assert watcher.check() is ReloadResult.APPLIED
    assert states(store)["seed"][1] < datetime.now(UTC) + timedelta(minutes=1, seconds=5)


def test_invalid_file_keeps_the_last_good_config_and_says_why(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient],
    store: SqlStore,
    served: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, watcher, dispatcher, client = running
    good = dispatcher.ctx.settings
    path.write_text(path.read_text(encoding="utf-8") + "  - {id: seed, url: ftp://x}\n")
    with caplog.at_level(logging.ERROR, logger="aggregator.config.reload"):
        assert watcher.check() is ReloadResult.REJECTED
        assert watcher.check() is ReloadResult.UNCHANGED  # reported once, not every check
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1
    assert "\n" not in errors[0]
    assert errors[0].startswith("invalid config, keeping the last good one: ")
    assert dispatcher.ctx.settings is good
    assert watcher.settings is good
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["config"]["error"] == "invalid config"
    assert any("sources[2]" in p for p in health["config"]["problems"])
    assert client.get("/feeds/all.xml").status_code == 200  # still serving
    write_config(path, {"seed": served["seed"]})
    assert watcher.check() is ReloadResult.APPLIED
    assert client.get("/healthz").json()["config"]["error"] is None


def test_keys_read_only_at_start_wait_for_a_restart(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient],
) -> None:
    path, watcher, dispatcher, _client = running
    text = path.read_text(encoding="utf-8")
    path.write_text("database: sqlite:///elsewhere.db\n" + text, encoding="utf-8")
    assert watcher.check() is ReloadResult.APPLIED
    assert watcher.settings.database == dispatcher.ctx.settings.database != "sqlite:///elsewhere.db"


def test_admin_endpoints_do_not_exist_without_a_token(store: SqlStore, tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources: []\n", encoding="utf-8")
    settings = load_settings(path)
    client = TestClient(create_app(settings, store, watcher=ConfigWatcher(path, settings)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/reload", headers=auth).status_code == 404
    assert client.post("/api/sources/x/fetch", headers=auth).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-xxxxxxxxx", f"Basic {TOKEN}"])
def test_admin_endpoints_refuse_a_missing_or_wrong_token(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient], header: str | None
) -> None:
    _path, _watcher, _dispatcher, client = running
    headers = {"Authorization": header} if header else {}
    for path in ("/api/reload", "/api/sources/seed/fetch"):
        refused = client.post(path, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/reload").status_code == 405  # POST only


def test_trigger_fetch_makes_a_source_due_now_and_unretires_it(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient], store: SqlStore
) -> None:
    _path, _watcher, _dispatcher, client = running
    store.set_due_times({"seed": datetime.now(UTC) + timedelta(hours=5)})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.post("/api/sources/seed/fetch", headers=auth)
    assert answer.status_code == 202
    due = store.get_source_state("seed").next_due_at
    assert due is not None
    assert due <= datetime.now(UTC)
    assert client.post("/api/sources/nope/fetch", headers=auth).status_code == 404


def test_reload_endpoint_applies_or_lists_problems(
    running: tuple[Path, ConfigWatcher, Dispatcher, TestClient], served: dict[str, str]
) -> None:
    path, _watcher, _dispatcher, client = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/reload", headers=auth).json()["result"] == "applied"  # forced
    path.write_text("sources: [{id: 1}]\n", encoding="utf-8")
    rejected = client.post("/api/reload", headers=auth)
    assert rejected.status_code == 422
    assert rejected.json()["result"] == "rejected"
    assert rejected.json()["config"]["problems"]
    write_config(path, {"seed": served["seed"]})
    assert client.post("/api/reload", headers=auth).json()["result"] == "applied"


def wait_for(check: Callable[[], bool], what: str, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"gave up waiting: {what}")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_running_service_follows_the_file_and_survives_an_invalid_one(
    tmp_path: Path, served: dict[str, str]
) -> None:
    """``aggregator run`` as ops run it: the file goes bad, then gains a source (SIGHUP)."""
    path = tmp_path / "sources.yaml"
    write_config(path, {"seed": served["seed"]}, interval="1h")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "run.log").open("wb")
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(path), "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def sources() -> dict[str, dict[str, object]]:
        rows = get_json(base + "/api/sources")
        assert isinstance(rows, list)
        return {row["id"]: row for row in rows}

    def answers() -> bool:
        try:
            return sources()["seed"]["status"] == "ok"
        except OSError:
            return False

    try:
        wait_for(answers, "the service to start and fetch the seed")
        path.write_text("sources: [{id: seed, url: nowhere}]\n", encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: get_json(base + "/healthz")["config"]["error"] == "invalid config",  # type: ignore[index]
            "the invalid file to be reported",
        )
        assert sources()["seed"]["enabled"] is True  # the last good config still runs
        with urllib.request.urlopen(base + "/feeds/all.xml", timeout=5) as response:
            assert b"<item>" in response.read()
        write_config(path, {"seed": served["seed"], "rss20": served["rss20"]}, interval="1h")
        wait_for(  # no signal this time: the periodic check finds it
            lambda: sources().get("rss20", {}).get("status") == "ok", "the new source fetched"
        )
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert process.returncode == 0, output
    assert output.count("invalid config, keeping the last good one") == 1, output
