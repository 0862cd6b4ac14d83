"""Scale benchmark (issue #5): 10,000 sources and 1,000,000 items on PostgreSQL.

    python bench/scale.py [--sources 10000] [--items 1000000] [--categories 200] [--runs 2]

1. Build (bench/scaledb.py): a fresh database made by the real migrations, its sources
   and categories by the store's sync_config, most items bulk-loaded with COPY, and the
   feeds' older items stored by a real pass. nginx serves the feeds (ETag, Last-Modified).
2. Passes: N `python -m aggregator worker` processes (N = 1, 2, 4, interleaved, --runs
   times each) start with nothing due; then every source is made due at once, and the
   pass lasts until every source has a fetch-log row from after that moment; then
   SIGTERM. Cold: validators cleared and the last pass's new items deleted first, so every
   feed answers 200 with --new-per-feed new items of --per-feed. Warm: the same again
   right after, every feed answers 304. Each worker's VmHWM and CPU time come from /proc.
3. No worker running, in-process through the store API: the due-source claim (repeated,
   released after each; EXPLAIN ANALYZE of each of its statements), a 50-item category
   feed and the `all` feed (list_feed_items, and Publisher.render uncached).
4. Sizes: pg_database_size and the biggest tables and indexes.
Writes <out>/results.json and the "Scale" section of docs/benchmarks.md (unless --no-docs).
The database is dropped at the end unless --keep-db; the code measured is a snapshot of
HEAD's aggregator/ unless --live (as in bench/ingest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import psycopg  # noqa: E402
import scaledb  # noqa: E402
from ingest import git_commit, snapshot_aggregator, snapshot_env  # noqa: E402
from measure import read_proc  # noqa: E402
from nginx_server import NginxServer  # noqa: E402
from report import update_docs  # noqa: E402
from scalereport import machine, reading, render_section, summarize  # noqa: E402

DOCS = REPO_ROOT / "docs" / "benchmarks.md"
DATABASE = "postgresql://postgres@127.0.0.1:5432/aggregator_scale"
POLL_SECONDS = 0.2
CLK = os.sysconf("SC_CLK_TCK")
# Due times a little apart, as a real (jittered, or spread after downtime) schedule has
# them: the claim orders by (next_due_at, source_id); the index is (enabled, next_due_at).
# All due at one instant is measured on its own in the claim section.
MAKE_DUE = (
    "UPDATE sources SET next_due_at = %s - (hashtext(source_id) & 1048575) "
    "* interval '1 microsecond', lease_owner = NULL, lease_until = NULL"
)
MAKE_DUE_TOGETHER = "UPDATE sources SET next_due_at = %s, lease_owner = NULL, lease_until = NULL"
NOT_DUE = (
    "UPDATE sources SET next_due_at = now() + interval '1 day', lease_owner = NULL, "
    "lease_until = NULL"
)
CLEAR_VALIDATORS = "UPDATE sources SET etag = NULL, last_modified = NULL, body_sha256 = NULL"
# the pass's fetch-log rows: cheap to count while it runs (each source is due once a day),
# checked by distinct source at the end
STARTED = "SELECT count(*) FROM fetches WHERE started_at >= %s"
DONE = "SELECT count(DISTINCT source_id) FROM fetches WHERE started_at >= %s"
OUTCOMES = (
    "SELECT outcome, http_status, count(*), sum(new_count), sum(unchanged_count) "
    "FROM fetches WHERE started_at >= %s GROUP BY 1, 2 ORDER BY 3 DESC"
)


# --------------------------------------------------------------------------- helpers


def pg(url: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(scaledb.psycopg_url(url), autocommit=autocommit)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ancestors() -> set[int]:
    """This process and the ones that started it (their command lines hold our args)."""
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def is_busy(pattern: str) -> bool:
    """Whether another benchmark (a process matching ``pattern``) runs on this machine."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return bool({int(pid) for pid in found.stdout.split()} - ancestors())


def wait_for_quiet(pattern: str, max_seconds: float) -> None:
    """Wait (polling every 30 s) while another benchmark runs on this machine."""
    deadline = time.monotonic() + max_seconds
    while is_busy(pattern):
        if time.monotonic() > deadline:
            raise SystemExit(f"{pattern} is still running after {max_seconds:.0f} s")
        print(f"waiting: {pattern} is running", flush=True)
        time.sleep(30)


def cpu_by_command(names: tuple[str, ...] = ("postgres", "nginx")) -> dict[str, float]:
    """CPU seconds used so far by every process with one of these command names."""
    totals = dict.fromkeys(names, 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        command = stat[stat.find("(") + 1 : stat.rfind(")")]
        if command in totals:
            ticks = stat.rsplit(")", 1)[1].split()
            # utime + stime, plus cutime + cstime: backends and autovacuum workers that
            # exit during a pass are reaped by the postmaster, and their CPU lands there
            totals[command] += sum(int(t) for t in ticks[11:15]) / CLK
    return totals


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def postgres_facts(url: str) -> dict[str, str]:
    with pg(url) as conn:
        facts = {"version": str(conn.execute("SHOW server_version").fetchone()[0])}  # type: ignore[index]
        for name in ("shared_buffers", "work_mem", "synchronous_commit", "max_connections"):
            facts[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    return facts


# --------------------------------------------------------------------------- passes


class Workers:
    """N `aggregator worker` processes, each logging to its own file."""

    def __init__(
        self, count: int, config: Path, env: dict[str, str], logs: Path, cwd: Path
    ) -> None:
        self.logs = [logs / f"worker-{i}.log" for i in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for log in self.logs:
            with log.open("wb") as handle:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "aggregator", "--config", str(config), "worker"],
                        env=env,
                        cwd=cwd,  # `python -m` imports from here first: the measured code
                        stdin=subprocess.DEVNULL,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def wait_running(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        for proc, log in zip(self.procs, self.logs, strict=True):
            while " running: " not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start: {log.read_text()[-3000:]}")
                time.sleep(0.1)

    def stop(self, timeout_s: float = 120) -> tuple[float, list[int | None]]:
        started = time.perf_counter()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout_s))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes.append(proc.wait(10))
        return time.perf_counter() - started, codes

    def fetch_counts(self) -> list[int]:
        """Fetches each process reported: `aggregator worker` logs one line per outcome
        ("s00001: 200, 5 new, 0 updated"), errors as warnings."""
        line = re.compile(r" (INFO [\w.]+: s\d+: .*, \d+ updated$|WARNING [\w.]+: s\d+: )", re.M)
        return [len(line.findall(log.read_text(errors="replace"))) for log in self.logs]


def prepare_pass(url: str, phase: str, keep_items_upto: int) -> None:
    """Nothing due or leased; for a cold pass also no validators and no items newer than
    the build, so every feed answers 200 and its newest items are new again."""
    with pg(url) as conn:
        conn.execute(NOT_DUE)
        if phase == "cold":
            conn.execute(CLEAR_VALIDATORS)
            conn.execute("DELETE FROM items WHERE item_id > %s", (keep_items_upto,))
    scaledb.vacuum(url, "sources, items, item_categories, item_sources, fetches")
    with pg(url) as conn:
        conn.execute("CHECKPOINT")  # not in the middle of the timed pass


def run_pass(
    args: argparse.Namespace,
    env: dict[str, str],
    phase: str,
    processes: int,
    run: int,
    attempt: int = 1,
) -> dict[str, Any]:
    """One full pass with ``processes`` workers; see the module docstring."""
    url, expected = args.database, args.sources
    logs = args.out / "logs" / f"{phase}-n{processes}-r{run}-a{attempt}"
    logs.mkdir(parents=True, exist_ok=True)
    workers = Workers(processes, args.out / "config.yaml", env, logs, args.code_dir)
    try:
        workers.wait_running()
        time.sleep(2)  # first ticks and the start-up housekeeping check, with nothing due
        cpu_before = cpu_by_command()
        work_before = [read_proc(p.pid) for p in workers.procs]
        ticks_before = machine_ticks()
        with pg(url) as conn:
            start_at = datetime.now(UTC)
            conn.execute(MAKE_DUE, (start_at,))
            started = time.perf_counter()
            done = 0
            while done < expected:
                if time.perf_counter() - started > args.pass_timeout:
                    raise RuntimeError(f"{phase} pass with {processes}: {done}/{expected}")
                time.sleep(POLL_SECONDS)
                done = int(conn.execute(STARTED, (start_at,)).fetchone()[0])  # type: ignore[index]
                if done >= expected:
                    done = int(conn.execute(DONE, (start_at,)).fetchone()[0])  # type: ignore[index]
            wall = time.perf_counter() - started
            outcomes = conn.execute(OUTCOMES, (start_at,)).fetchall()
        ticks_after = machine_ticks()
        work_after = [read_proc(p.pid) for p in workers.procs]
        cpu_after = cpu_by_command()
        alive = [p.poll() is None for p in workers.procs]
    finally:
        stop_s, codes = workers.stop()
    per_process = []
    for pid, before, after, fetches in zip(
        (p.pid for p in workers.procs), work_before, work_after, workers.fetch_counts(), strict=True
    ):
        per_process.append(
            {
                "pid": pid,
                "fetches": fetches,
                "hwm_mb": round(after.hwm_mb, 1) if after else None,
                "cpu_s": round(after.cpu_seconds - before.cpu_seconds, 2)
                if after and before
                else None,
            }
        )
    busy = (ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1])
    result = {
        "phase": phase,
        "processes": processes,
        "run": run,
        "wall_s": round(wall, 3),
        "fetches_per_s": round(expected / wall, 1),
        "outcomes": [
            {"outcome": o, "status": s, "count": c, "new": int(n or 0), "unchanged": int(u or 0)}
            for o, s, c, n, u in outcomes
        ],
        "processes_detail": per_process,
        "cpu_s": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after},
        "machine_busy": round(busy, 3),
        "stop_s": round(stop_s, 2),
        "exit_codes": codes,
    }
    result["problems"] = pass_problems(result, expected, args.new_per_feed, alive)
    print(
        f"{phase} N={processes} run {run}: {wall:.2f} s, {expected / wall:.0f} fetches/s, "
        f"busy {busy:.0%}, {result['outcomes']}",
        flush=True,
    )
    return result


def pass_problems(
    result: dict[str, Any], sources: int, new_per_feed: int, alive: list[bool]
) -> list[str]:
    """What makes a pass not the pass it claims to be: a worker that died or did not exit
    cleanly, or feeds that did not all answer as the phase prepared them to."""
    problems = [f"worker {i} died during the pass" for i, up in enumerate(alive) if not up]
    problems += [
        f"worker {i} exited with {code}" for i, code in enumerate(result["exit_codes"]) if code
    ]
    got = {(o["outcome"], o["status"]): o for o in result["outcomes"]}
    want = {"cold": ("ok", 200), "setup": ("ok", 200), "warm": ("not_modified", 304)}
    key = want[result["phase"]]
    if set(got) != {key} or got[key]["count"] != sources:
        problems.append(f"expected {sources} fetches answered {key}, got {result['outcomes']}")
    elif result["phase"] == "cold" and got[key]["new"] != sources * new_per_feed:
        problems.append(f"expected {sources * new_per_feed} new items, got {got[key]['new']}")
    return problems


def quiet_pass(
    args: argparse.Namespace,
    env: dict[str, str],
    phase: str,
    processes: int,
    run: int,
    build: dict[str, Any],
) -> dict[str, Any]:
    """run_pass when nothing else runs, again if another benchmark started during it (a
    warm pass again after its cold one, which it needs for its validators)."""
    for attempt in range(1, 4):
        wait_for_quiet(args.wait_for, args.wait_max)
        prepare_pass(args.database, phase, build["max_item_id"])
        if phase == "warm":
            with pg(args.database) as conn:
                row = conn.execute("SELECT count(*) FROM sources WHERE etag IS NULL").fetchone()
            if row and row[0]:  # the cold pass before was repeated or cut short
                quiet_pass(args, env, "cold", processes, run, build)
                prepare_pass(args.database, phase, build["max_item_id"])
        result = run_pass(args, env, phase, processes, run, attempt)
        if not is_busy(args.wait_for):
            return result
        print(f"{args.wait_for} started during the pass: it does not count", flush=True)
    raise SystemExit(f"{args.wait_for} kept running during the {phase} N={processes} pass")


# --------------------------------------------------------------------------- in-process


def timed(call: Callable[[], Any], repeat: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def explain(store: Any, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE each captured statement in a transaction that is rolled back."""
    plans = []
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            with conn.begin() as transaction:
                rows = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).all()
                transaction.rollback()
            text = [row[0] for row in rows]
            execution = next(
                float(line.split(":")[1].split()[0]) for line in text if "Execution Time" in line
            )
            plans.append({"sql": statement, "execution_ms": execution, "plan": text})
    return plans


def captured(store: Any, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SQL statements ``call`` sends through the store's engine, with parameters."""
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    return statements


CLAIM_VARIANTS = (
    # label, limit (None: a worker's slots, --threads), per-host limits on, hosts, due
    # times, minutes after the last pass
    ("no per-host limits, all free slots", None, False, 1, "apart", 0),
    ("no per-host limits, limit 1 (refilling one free slot)", 1, False, 1, "apart", 0),
    ("no per-host limits, all free slots, all due at one instant", None, False, 1, "together", 0),
    ("per-host limits, all free slots, one host, busy last minute", None, True, 1, "apart", 0),
    ("per-host limits, all free slots, one host, quiet last minute", None, True, 1, "apart", 2),
    ("per-host limits, all free slots, 50 hosts, busy last minute", None, True, 50, "apart", 0),
)


def claim_timings(args: argparse.Namespace) -> dict[str, Any]:
    """``claim_due_sources`` with every source due, timed alone (each claim's leases are
    released again, untimed, so every call sees the same table)."""
    from aggregator.store import HostLimits
    from aggregator.store.sql import SqlStore

    url = args.database
    store = SqlStore(url)
    lease, owner = timedelta(seconds=60), "bench-claim"
    with pg(url) as conn:
        # just after the last pass, so the fetch log's last minute is a busy one (what
        # max_per_minute counts)
        row = conn.execute("SELECT max(started_at) FROM fetches").fetchone()
        now = row[0] + timedelta(seconds=1)  # type: ignore[index]
        minute = conn.execute(
            "SELECT count(*) FROM fetches WHERE started_at >= %s", (now - timedelta(minutes=1),)
        ).fetchone()[0]  # type: ignore[index]
    results = []
    for label, wanted, polite, host_count, due, later in CLAIM_VARIANTS:
        limit = wanted or args.threads
        hosts = HostLimits(max_concurrent=4, max_per_minute=600) if polite else HostLimits()
        at = now + timedelta(minutes=later)
        with pg(url) as conn:
            conn.execute(MAKE_DUE if due == "apart" else MAKE_DUE_TOGETHER, (at,))
            # host names only (nothing is fetched here): the per-host counts group by them
            conn.execute(
                "UPDATE sources SET host = CASE WHEN %s = 1 THEN '127.0.0.1' "
                "ELSE 'feeds-' || (abs(hashtext(source_id)) %% %s) || '.example' END",
                (host_count, host_count),
            )
        scaledb.vacuum(url, "sources")

        def claim(limit: int = limit, hosts: HostLimits = hosts, at: datetime = at) -> int:
            return len(store.claim_due_sources(at, owner, limit, lease, hosts))

        samples, counts = [], []
        for attempt in range(3 + args.claim_repeat):
            started = time.perf_counter()
            count = claim()
            elapsed = time.perf_counter() - started
            store.release_leases(owner)
            if attempt >= 3:  # the first three warm the pool and caches
                samples.append(elapsed)
                counts.append(count)
        plans = explain(store, captured(store, claim))
        store.release_leases(owner)
        per_claim = median(samples) * 1000
        got = median([float(c) for c in counts])
        results.append(
            {
                "variant": label,
                "limit": limit,
                "median_ms": round(per_claim, 3),
                "p90_ms": round(statistics.quantiles(samples, n=10)[-1] * 1000, 3)
                if len(samples) >= 2
                else None,
                "claimed": got,
                "ms_per_source": round(per_claim / got, 3) if got else None,
                "explain": plans,
            }
        )
        print(f"claim: {label}: {per_claim:.2f} ms, {got:g} claimed", flush=True)
    with pg(url) as conn:
        conn.execute("UPDATE sources SET host = '127.0.0.1'")
        conn.execute(NOT_DUE)
    store.close()
    return {"now": now.isoformat(), "fetches_last_minute": minute, "variants": results}


def feed_timings(args: argparse.Namespace, slugs: list[str]) -> dict[str, float]:
    """Median ms of the queries and renders behind a 50-item feed, at full size."""
    from aggregator.config.settings import load_settings
    from aggregator.publish.publisher import FeedRequest, Publisher
    from aggregator.publish.query import FeedQuery
    from aggregator.store.sql import SqlStore

    settings = load_settings(args.out / "config.yaml")
    store = SqlStore(args.database)
    repeat = args.feed_repeat
    picks = iter(range(10**9))

    def category_items() -> None:
        store.list_feed_items([slugs[next(picks) * 37 % len(slugs)]], 50)

    def render(slug: str | None) -> float:
        publisher = Publisher(settings, store)
        request = FeedRequest(
            key=slug or "all", slugs=(slug,) if slug else None, extension="xml", query=FeedQuery()
        )
        started = time.perf_counter()
        publisher.stamp(request)  # the server reads it first (rendering itself caches nothing)
        document = publisher.render(request)
        elapsed = time.perf_counter() - started
        assert 0 < document.body.count(b"<item>") <= 50
        return elapsed

    result = {
        "category_items_ms": median(timed(category_items, repeat)) * 1000,
        "all_items_ms": median(timed(lambda: store.list_feed_items(None, 50), repeat)) * 1000,
        "source_info_ms": median(timed(store.list_source_info, repeat)) * 1000,
        "render_category_ms": median(
            [render(slugs[i * 53 % len(slugs)]) for i in range(repeat + 3)][3:]
        )
        * 1000,
        "render_all_ms": median([render(None) for _ in range(repeat + 3)][3:]) * 1000,
    }
    store.close()
    print(f"feeds: {result}", flush=True)
    return {k: round(v, 2) for k, v in result.items()}


# --------------------------------------------------------------------------- build


BUILD_KEYS = ("sources", "items", "categories", "per_feed", "new_per_feed", "seed", "database")


def sync_config(args: argparse.Namespace, port: int) -> None:
    """Write the config (nginx's port is in every URL) and make the database follow it
    through the store's own sync_config, as every worker does at start."""
    from aggregator.config.settings import load_settings
    from aggregator.runtime.scheduler import configured_categories, source_plans
    from aggregator.store.sql import SqlStore

    config = args.out / "config.yaml"
    cats = scaledb.categories(args.categories)
    scaledb.write_config(config, args.database, port, args.sources, cats, args.threads)
    settings = load_settings(config)
    store = SqlStore(args.database)
    store.sync_config(source_plans(settings), configured_categories(settings), datetime.now(UTC))
    store.close()


def reusable_build(args: argparse.Namespace) -> dict[str, Any] | None:
    """With --reuse: the last build's facts, if it was made with these arguments and its
    database is still there."""
    saved = args.out / "build.json"
    if not (args.reuse and saved.exists() and scaledb.database_exists(args.database)):
        return None
    facts: dict[str, Any] = json.loads(saved.read_text())
    if facts.get("args") != {k: getattr(args, k) for k in BUILD_KEYS}:
        return None
    return facts


def build(args: argparse.Namespace, env: dict[str, str], port: int) -> dict[str, Any]:
    """The database and feeds of the module docstring's step 1; returns facts about it."""
    facts = reusable_build(args)
    if facts is not None:
        sync_config(args, port)
        print("reusing the database and feeds of the last build", flush=True)
        return facts
    cats = scaledb.categories(args.categories)
    corpus_dir = args.out / "corpus"
    older = args.per_feed - args.new_per_feed
    bulk = args.items - args.sources * older
    if bulk < 0:
        raise SystemExit("--items must be at least --sources x (--per-feed - --new-per-feed)")
    started = time.perf_counter()
    feed_bytes = scaledb.write_feeds(
        corpus_dir, args.sources, args.per_feed, args.new_per_feed, cats, args.seed
    )
    scaledb.use_feeds(corpus_dir, "setup")
    feeds_s = time.perf_counter() - started
    scaledb.create_database(args.database)
    cats_config = args.out / "config.yaml"
    scaledb.write_config(cats_config, args.database, port, args.sources, cats, args.threads)
    subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(cats_config), "db", "upgrade"],
        env=env,
        cwd=args.code_dir,
        check=True,
        capture_output=True,
    )
    sync_config(args, port)
    started = time.perf_counter()
    scaledb.bulk_fill(args.database, bulk, cats, args.sources)
    bulk_s = time.perf_counter() - started
    prepare_pass(args.database, "setup", 0)
    setup = run_pass(args, env, "setup", 2, 0)
    scaledb.use_feeds(corpus_dir, "full")
    with pg(args.database) as conn:
        items = conn.execute("SELECT count(*), max(item_id) FROM items").fetchone()
    if items is None or items[0] != args.items:
        raise RuntimeError(f"expected {args.items} items after the build, found {items}")
    facts = {
        "args": {k: getattr(args, k) for k in BUILD_KEYS},
        "feeds_s": round(feeds_s, 1),
        "feed_bytes": feed_bytes,
        "bulk_items": bulk,
        "bulk_s": round(bulk_s, 1),
        "setup_pass": setup,
        "items": items[0],
        "max_item_id": items[1],
    }
    (args.out / "build.json").write_text(json.dumps(facts, indent=1))
    return facts


# --------------------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1_000_000, help="items before a pass")
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--per-feed", type=int, default=10, help="items in each feed")
    parser.add_argument("--new-per-feed", type=int, default=5, help="of them new in a cold pass")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts")
    parser.add_argument("--threads", type=int, default=8, help="defaults.workers per process")
    parser.add_argument("--runs", type=int, default=2, help="passes per (phase, processes)")
    parser.add_argument("--claim-repeat", type=int, default=200)
    parser.add_argument("--feed-repeat", type=int, default=60)
    parser.add_argument("--pass-timeout", type=float, default=1800.0, help="seconds")
    parser.add_argument("--database", default=DATABASE, help="dropped and created again")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "scale")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--wait-for", default="bench/soak.py", help="pgrep -f pattern")
    parser.add_argument("--wait-max", type=float, default=2400.0, help="seconds")
    parser.add_argument("--keep-db", action="store_true", help="do not drop it at the end")
    parser.add_argument(
        "--reuse", action="store_true", help="the last build's database (--keep-db) and feeds"
    )
    parser.add_argument("--live", action="store_true", help="the working tree, no snapshot")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    args.processes = [int(n) for n in args.processes.split(",")]
    if 1 not in args.processes:
        parser.error("--processes must include 1: speed-ups are against one process")
    if args.claim_repeat < 2 or args.feed_repeat < 1:
        parser.error("--claim-repeat must be at least 2 and --feed-repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.live:
        env, commit = dict(os.environ), git_commit()
        args.code_dir = REPO_ROOT
    else:  # edits others make to aggregator/ while this runs cannot leak in
        snapshot = snapshot_aggregator(args.out / "snapshot")
        env, commit = snapshot_env(snapshot), git_commit().removesuffix("+dirty") + " (HEAD)"
        sys.path.insert(0, str(snapshot))
        args.code_dir = snapshot
    env["AGGREGATOR_DATABASE_URL"] = os.environ["AGGREGATOR_DATABASE_URL"] = args.database
    corpus_dir = args.out / "corpus"
    corpus_dir.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "command": "python bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": commit,
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    results["command"] = results["command"].strip()
    try:
        wait_for_quiet(args.wait_for, args.wait_max)
        with NginxServer(corpus_dir) as nginx:
            results["build"] = build(args, env, nginx.port)
            results["postgres"] = postgres_facts(args.database)
            prepare_pass(args.database, "cold", results["build"]["max_item_id"])
            results["sizes"] = scaledb.sizes(args.database)
            with pg(args.database) as conn:
                row = conn.execute("SELECT count(*) FROM fetches").fetchone()
                results["sizes"]["fetch_rows"] = row[0] if row else 0
            passes = []
            for run in range(1, args.runs + 1):
                for n in args.processes:
                    for phase in ("cold", "warm"):
                        passes.append(quiet_pass(args, env, phase, n, run, results["build"]))
            results["passes"] = passes
        wait_for_quiet(args.wait_for, args.wait_max)
        results["claims"] = claim_timings(args)
        prepare_pass(args.database, "cold", results["build"]["max_item_id"])  # 1,000,000 items
        results["feeds"] = feed_timings(args, [c.slug for c in scaledb.categories(args.categories)])
    finally:
        if not args.keep_db:
            scaledb.drop_database(args.database)
    results["summary"] = summarize(results["passes"], args.sources)
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["reading"] = reading(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    section = render_section(results)
    print(section)
    if not args.no_docs:
        update_docs(DOCS, section)
    problems = [p for run in results["passes"] for p in run["problems"]]
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
