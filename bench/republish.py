"""Republishing benchmark: render times at 1,000,000 items and HTTP throughput vs nginx.

    python bench/republish.py [--items 1000000] [--categories 2000] [--out bench/out/pub]

1. Builds a store of N items across C categories (bench/prefill.py's rows, bulk SQL into
   the real schema, so it takes a minute, not an ingest), unless it exists with that size.
2. In-process: median time to render a 50-item category feed uncached (a fresh render
   cache, a different category each time) and cached, and to build a JSON API page.
3. Over loopback with wrk (2 threads, 64 connections, 10 s): `aggregator serve` answering
   a 50-item category feed (200, and 304 with If-None-Match), and nginx serving the same
   bytes as a static file (200, and 304), in the same run.
Writes a section to docs/benchmarks.md (unless --no-docs) with PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prefill
from nginx_server import NginxServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Republish: 1,000,000 items, 2,000 categories"
RUNS = 3  # wrk runs per measurement; the report gives medians


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_store(db: Path, items: int, categories: int) -> None:
    """Create the schema with the real migrations, then bulk-insert rows."""
    from aggregator.store.sql import SqlStore

    if db.exists():
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT count(*) FROM items").fetchone()[0] == items:
                return
        for path in db.parent.glob(db.name + "*"):
            path.unlink()
    store = SqlStore(f"sqlite:///{db}")
    store.upgrade()
    store.close()
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    now = datetime.now(UTC).strftime(fmt)
    slugs = [f"outlet-{c:04d}" for c in range(categories)]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO categories (slug, title, description, name, identity_key, origin, "
        "created_at, last_seq) VALUES (?, ?, '', ?, ?, 'derived', ?, 0)",
        [
            (slug, f"媒体{c:04d}新闻", f"媒体{c:04d}", f"媒体{c:04d}", now)
            for c, slug in enumerate(slugs)
        ],
    )
    conn.execute(
        "INSERT INTO sources (source_id, url, enabled, next_due_at, consecutive_errors, "
        "created_at) VALUES ('bench', 'http://127.0.0.1/x', 1, ?, 0, ?)",
        (now, now),
    )
    rows = prefill.item_rows(items, slugs, ["bench"])
    while batch := list(itertools.islice(rows, 20000)):
        conn.executemany(
            "INSERT INTO items (item_id, stable_id, seq, first_seq, title, link, content, "
            "author, published_at, published_offset_minutes, first_seen_at, updated_at, "
            "update_count, source_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.item_id,
                    r.stable_id,
                    r.item_id,
                    r.item_id,
                    r.title,
                    r.link,
                    prefill.BODY,
                    "媒体",
                    r.published_at.strftime(fmt),
                    prefill.OFFSET_MINUTES,
                    now,
                    now,
                    0,
                    r.source_id,
                )
                for r in batch
            ],
        )
        conn.executemany(
            "INSERT INTO item_categories (item_id, category_slug, published_at, added_at) "
            "VALUES (?,?,?,?)",
            [(r.item_id, r.category_slug, r.published_at.strftime(fmt), now) for r in batch],
        )
    for statement in prefill.FINISH_SQL:
        conn.execute(statement)
    conn.execute("COMMIT")
    conn.close()


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def render_timings(db: Path, items: int, categories: int) -> dict[str, float]:
    from starlette.testclient import TestClient

    from aggregator.config.settings import parse_settings
    from aggregator.serve.app import create_app
    from aggregator.store.sql import SqlStore

    settings = parse_settings(f"database: sqlite:///{db}\nsite_url: http://bench\n")
    store = SqlStore(settings.database)
    client = TestClient(create_app(settings, store))
    uncached, cached, api = [], [], []
    for i in range(60):
        slug = f"outlet-{(i * 37) % categories:04d}"
        t = time.perf_counter()
        response = client.get(f"/feeds/{slug}.xml")
        uncached.append(time.perf_counter() - t)
        assert response.status_code == 200
        t = time.perf_counter()
        client.get(f"/feeds/{slug}.xml")
        cached.append(time.perf_counter() - t)
        t = time.perf_counter()
        page = client.get(f"/api/items?limit=100&since={(i * 15000) % (items - 200)}")
        api.append(time.perf_counter() - t)
        assert page.status_code == 200
        assert len(page.json()["items"]) == 100
    store.close()
    return {
        "uncached_ms": median_ms(uncached[5:]),
        "cached_ms": median_ms(cached[5:]),
        "api_ms": median_ms(api[5:]),
    }


def wrk(url: str, headers: dict[str, str] | None = None, seconds: int = 10) -> dict[str, float]:
    command = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(x) for x in found.groups())
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(found.group(1))
    return {"rps": rate, "errors": errors}


def load_test(db: Path, out: Path, workers: int) -> dict[str, dict[str, float]]:
    slug = "outlet-0001"
    config = out / "serve.yaml"
    config.write_text(f"database: sqlite:///{db}\nsite_url: http://bench\n", encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    static = out / "static"
    static.mkdir(exist_ok=True)
    nginx: NginxServer | None = None
    try:
        url = f"http://127.0.0.1:{port}/feeds/{slug}.xml"
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    body, etag = response.read(), response.headers["ETag"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("aggregator serve did not start")
        (static / "feed.xml").write_bytes(body)
        nginx = NginxServer(static)
        nginx.start()
        nginx_url = f"{nginx.base_url}/feed.xml"
        with urllib.request.urlopen(nginx_url, timeout=2) as response:
            nginx_etag = response.headers["ETag"]
        runs: dict[str, list[dict[str, float]]] = {
            "ours_200": [],
            "ours_304": [],
            "nginx_200": [],
            "nginx_304": [],
        }
        for _ in range(RUNS):  # interleaved, so background noise hits both servers alike
            runs["ours_200"].append(wrk(url))
            runs["nginx_200"].append(wrk(nginx_url))
            runs["ours_304"].append(wrk(url, {"If-None-Match": etag}))
            runs["nginx_304"].append(wrk(nginx_url, {"If-None-Match": nginx_etag}))
        result = {
            name: {
                "rps": statistics.median(r["rps"] for r in samples),
                "errors": sum(r["errors"] for r in samples),
            }
            for name, samples in runs.items()
        }
        result["feed_bytes"] = {"rps": float(len(body)), "errors": 0}
        return result
    finally:
        server.terminate()
        server.wait(20)
        if nginx is not None:
            nginx.stop()


def report(
    items: int,
    categories: int,
    timings: dict[str, float],
    load: dict[str, dict[str, float]],
    workers: int,
) -> tuple[str, bool]:
    ratio_200 = load["ours_200"]["rps"] / load["nginx_200"]["rps"]
    ratio_304 = load["ours_304"]["rps"] / load["nginx_304"]["rps"]
    errors = sum(load[k]["errors"] for k in ("ours_200", "ours_304"))
    checks = [
        ("cached 200 rate / nginx 200 rate", f"{ratio_200:.3f}", ">= 0.25", ratio_200 >= 0.25),
        ("304 rate / nginx 304 rate", f"{ratio_304:.3f}", ">= 0.1", ratio_304 >= 0.1),
        ("errors under load (ours)", str(errors), "= 0", errors == 0),
        (
            "uncached 50-item feed render",
            f"{timings['uncached_ms']} ms",
            "< 20 ms",
            timings["uncached_ms"] < 20,
        ),
    ]
    lines = [
        SECTION,
        "",
        f"Generated by `python bench/republish.py --items {items} --categories {categories}` "
        f"on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs; SQLite store; "
        f"`aggregator serve --workers {workers}` (granian); wrk 2 threads, 64 connections, "
        f"10 s per run, medians of {RUNS} interleaved runs, on the same machine as the "
        "servers.",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| render a 50-item category feed, uncached (median) | {timings['uncached_ms']} ms |",
        f"| the same, cached (median) | {timings['cached_ms']} ms |",
        f"| JSON API page of 100 items (median) | {timings['api_ms']} ms |",
        f"| feed size | {int(load['feed_bytes']['rps']):,} bytes |",
        f"| ours: cached 200 | {load['ours_200']['rps']:,.0f} req/s |",
        f"| ours: 304 (If-None-Match) | {load['ours_304']['rps']:,.0f} req/s |",
        f"| nginx: static file 200 | {load['nginx_200']['rps']:,.0f} req/s |",
        f"| nginx: 304 | {load['nginx_304']['rps']:,.0f} req/s |",
        "",
        "| target | value | required | result |",
        "|---|---:|---|---|",
        *[
            f"| {name} | {value} | {need} | {'PASS' if ok else 'FAIL'} |"
            for name, value, need, ok in checks
        ],
        "",
    ]
    return "\n".join(lines), all(ok for *_, ok in checks)


def write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end != -1 else "")
    DOCS.write_text(text.rstrip() + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--categories", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "pub")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="serve --workers (default: the CPU count)",
    )
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "store.db"
    t = time.perf_counter()
    build_store(db, args.items, args.categories)
    print(f"store ready in {time.perf_counter() - t:.1f}s ({db.stat().st_size // 2**20} MB)")
    timings = render_timings(db, args.items, args.categories)
    print(timings)
    load = load_test(db, args.out, args.workers)
    print(load)
    section, passed = report(args.items, args.categories, timings, load, args.workers)
    print(section)
    if not args.no_docs:
        write_docs(section)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
