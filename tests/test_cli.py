"""The command line as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from aggregator.finance.exchanges import market_clock
from aggregator.ingest.freshness import MarketSchedule, market_next
from tests.conftest import FIXTURES
from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parent.parent


def aggregator(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer) -> Path:
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""
database: sqlite:///{tmp_path / "db.sqlite"}
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
sources:
  - {{id: seed, url: "{feed_server.url("/seed.rss")}", category_from: author}}
  - {{id: down, url: "{feed_server.url("/missing.xml")}", category: shanghaizhengquanbao}}
""",
        encoding="utf-8",
    )
    return path


def test_fetch_prints_a_table_and_strict_fails_on_errors(config: Path) -> None:
    result = aggregator("--config", str(config), "fetch")
    assert result.returncode == 0, result.stderr
    assert "seed" in result.stdout
    assert "down" in result.stdout
    assert "HTTP 404 Not Found" in result.stdout
    assert "1 new, 0 updated, 1 source(s) failed" in result.stdout
    strict = aggregator("--config", str(config), "fetch", "--strict", "--source", "down")
    assert strict.returncode == 1
    only = aggregator("--config", str(config), "fetch", "--source", "seed")
    assert only.returncode == 0
    assert "304 not modified" in only.stdout
    assert "down" not in only.stdout


def test_config_and_log_level_are_accepted_after_the_command(config: Path) -> None:
    after = aggregator("fetch", "--config", str(config), "--log-level", "DEBUG")
    assert after.returncode == 0, after.stderr
    assert "1 new, 0 updated, 1 source(s) failed" in after.stdout
    assert " DEBUG urllib3" in after.stderr  # the level reached the root logger
    # given on both sides, the one after the command wins
    both = aggregator("--config", "nowhere.yaml", "--log-level", "DEBUG", "sources")
    assert both.returncode == 1
    both = aggregator(
        "--config", "nowhere.yaml", "--log-level", "DEBUG",
        "fetch", "--config", str(config), "--log-level", "WARNING",
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert " DEBUG " not in both.stderr
    db_upgrade = aggregator("db", "upgrade", "--config", str(config))
    assert db_upgrade.returncode == 0, db_upgrade.stderr
    wrong = aggregator("fetch", "--log-level", "LOUD")
    assert wrong.returncode == 2
    assert "Invalid value for '--log-level'" in wrong.stderr


def test_fetch_with_unknown_source_or_bad_config_exits_1(config: Path, tmp_path: Path) -> None:
    unknown = aggregator("--config", str(config), "fetch", "--source", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: unknown source id(s): nope"
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {id: a, url: 'ftp://x'}\n", encoding="utf-8")
    broken = aggregator("--config", str(bad), "fetch")
    assert broken.returncode == 1
    assert f"error: {bad}:2: sources[0]" in broken.stderr


def test_sources_shows_status_at_a_glance(config: Path) -> None:
    aggregator("--config", str(config), "fetch")
    table = aggregator("--config", str(config), "sources")
    assert table.returncode == 0, table.stderr
    assert "from author" in table.stdout
    assert "HTTP 404" in table.stdout
    rows = json.loads(aggregator("--config", str(config), "sources", "--json").stdout)
    by_id = {row["id"]: row for row in rows}
    assert by_id["seed"]["items"] == 1
    assert by_id["seed"]["status"] == "ok"
    assert by_id["down"]["consecutive_errors"] == 1
    assert by_id["down"]["http_status"] == 404


def test_sources_shows_a_market_clocked_schedule(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""
database: sqlite:///{tmp_path / "db.sqlite"}
defaults: {{jitter_fraction: 0}}
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
sources:
  - id: market
    url: "{feed_server.url("/seed.rss")}"
    category: shanghaizhengquanbao
    interval: {{trading: 1m, closed: 30m, market: XSHG}}
""",
        encoding="utf-8",
    )
    assert aggregator("--config", str(path), "fetch").returncode == 0
    table = aggregator("--config", str(path), "sources")
    assert "XSHG 1m/30m" in table.stdout, table.stdout
    (row,) = json.loads(aggregator("--config", str(path), "sources", "--json").stdout)
    assert row["schedule"] == "XSHG 1m/30m"
    fetched = datetime.fromisoformat(row["last_fetch_at"])
    due = datetime.fromisoformat(row["next_due_at"])
    market = MarketSchedule(timedelta(minutes=1), timedelta(minutes=30), market_clock("XSHG"))
    expected, _, _ = market_next(fetched, market)
    assert abs(due - expected) < timedelta(seconds=5)


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "timezon: x\nsources:\n  - {id: a, url: 'ftp://x', category: c}\n", encoding="utf-8"
    )
    result = aggregator("--config", str(bad), "check-config")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{bad}:1: timezon: unknown key (did you mean 'timezone'?)"
    assert lines[-1] == "3 problem(s) found"
    good = aggregator("check-config")  # the bundled config
    assert good.returncode == 0
    assert good.stdout.startswith("config OK:")


def test_run_from_another_folder_says_where_it_looked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "sources"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: config/sources.yaml:0: cannot read the config file: No such file or "
        f"directory; looked for {tmp_path / 'config' / 'sources.yaml'} (relative to the "
        "current folder); name the file with --config PATH or AGGREGATOR_CONFIG=PATH"
    )


def test_config_schema_is_json(tmp_path: Path) -> None:
    result = aggregator("config-schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "aggregator configuration"
    assert "sources" in schema["properties"]


def test_db_upgrade_and_env_database(tmp_path: Path, config: Path) -> None:
    db = tmp_path / "other.db"
    result = aggregator(
        "--config", str(config), "db", "upgrade", env={"AGGREGATOR_DATABASE_URL": f"sqlite:///{db}"}
    )
    assert result.returncode == 0, result.stderr
    assert db.exists()


def test_bundled_samples_work_offline_from_a_fresh_checkout(tmp_path: Path) -> None:
    """The README's first command, minus the long-running part."""
    env = {"AGGREGATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    result = aggregator("fetch", "--strict", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 source(s) failed" in result.stdout
    assert "eastmoney-rss" in result.stdout


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_busy_port_is_one_line_naming_port_before_anything_starts(
    config: Path, command: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = aggregator("--config", str(config), command, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another process listens there; choose another port with --port)"
    )
    assert "serving" not in result.stdout + result.stderr
    assert not (config.parent / "db.sqlite").exists()  # nothing was started or created


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_serve_answers_over_a_real_socket_and_stops_on_sigterm(
    config: Path, tmp_path: Path, server: str
) -> None:
    import signal
    import time
    import urllib.error
    import urllib.request

    assert aggregator("--config", str(config), "fetch").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--server",
            server,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/feeds/shanghaizhengquanbao.xml"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    etag = response.headers["ETag"]
                    assert b"<rss" in response.read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not answer: " + (tmp_path / "serve.log").read_text())
        request = urllib.request.Request(url, headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=2)
        caught.value.close()
        assert caught.value.code == 304
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()


def test_opml_export_then_import_gives_the_configured_feed_sources(tmp_path: Path) -> None:
    sample = ROOT / "config" / "sources.yaml"
    exported = aggregator(
        "--config", str(sample), "opml", "export", "--out", "s.opml", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    assert (
        "left out 3 source(s) that are not feeds (JSON APIs, HTML lists): cnstock-html, "
        "eastmoney-api, eastmoney-live"
    ) in exported.stderr
    imported = aggregator("opml", "import", str(tmp_path / "s.opml"), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    fragment = yaml.safe_load(imported.stdout)
    assert [s["id"] for s in fragment["sources"]] == [
        "eastmoney-rss",
        "cnstock-atom",
        "cnstock-fulltext",
    ]
    assert all(s["category_from"] == "author" for s in fragment["sources"])
    written = aggregator("opml", "import", "s.opml", "--out", "new.yaml", cwd=tmp_path)
    assert written.returncode == 0
    assert yaml.safe_load((tmp_path / "new.yaml").read_text(encoding="utf-8")) == fragment
    assert "3 source(s)" in written.stderr
    (tmp_path / "bad.opml").write_bytes(b"<opml><body>")
    bad = aggregator("opml", "import", "bad.opml", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: bad.opml: not well-formed XML")
