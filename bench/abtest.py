"""A/B benchmark: two commits of aggregator/ on one corpus and one store, in alternated pairs.

    python bench/abtest.py --base 660d996 [--head HEAD] [--pairs 5] [--what ingest,serve]

For judging a change that should not change speed (a refactor) or should change it by a
known amount. Both commits' ``aggregator/`` are extracted with ``git archive`` and
byte-compiled (as bench/ingest.py does for HEAD), and each side runs from its own
snapshot on ``PYTHONPATH``, so the installed package does not matter.

ingest: bench/corpus.py's corpus served by nginx; per pair, each side's ``aggregator
    fetch`` cold (empty SQLite database) then warm (every feed answers 304). Pairs run
    A B, B A, A B ... so a drift of the machine's speed falls on both sides alike. Memory
    is the peak over the run of the PSS summed over the command's whole process tree
    (the sharded pass forks), sampled every 50 ms from /proc/PID/smaps_rollup.
serve: one prefilled store (bench/republish.py's builder); per pair, each side's
    in-process render of uncached 50-item category feeds (median ms), then ``aggregator
    serve`` under wrk (2 threads, 64 connections) for cached 200s and 304s.

Prints per-pair ratios B/A (head over base) and their median, min and max; with --docs,
replaces the section "A/B: BASE against HEAD" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import corpus  # noqa: E402
from ingest import check_http_caching, remove_sqlite, sqlite_count  # noqa: E402
from measure import machine_facts  # noqa: E402
from nginx_server import NginxServer, free_port  # noqa: E402
from republish import build_store, wrk  # noqa: E402

SAMPLE_SECONDS = 0.05

# Run in a child with a snapshot first on PYTHONPATH: the median time of uncached renders
# of 50-item category feeds. Module paths moved in the architecture change, so both are
# tried.
RENDER_PROBE = """
import json, statistics, sys, time
from starlette.testclient import TestClient
try:
    from aggregator.config.settings import parse_settings
    from aggregator.serve.app import create_app
except ImportError:
    from aggregator.config import parse_settings
    from aggregator.web import create_app
from aggregator.store.sql import SqlStore
db, categories = sys.argv[1], int(sys.argv[2])
settings = parse_settings(f"database: sqlite:///{db}\\nsite_url: http://bench\\n")
store = SqlStore(settings.database)
client = TestClient(create_app(settings, store))
samples = []
for i in range(65):
    slug = f"outlet-{(i * 37) % categories:04d}"
    t = time.perf_counter()
    response = client.get(f"/feeds/{slug}.xml")
    samples.append(time.perf_counter() - t)
    assert response.status_code == 200, response.status_code
store.close()
print(json.dumps({"uncached_ms": statistics.median(samples[5:]) * 1000}))
"""


@dataclass(frozen=True)
class Side:
    label: str  # "A" or "B"
    commit: str  # full hash
    snapshot: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.snapshot)}

    @property
    def knows_allow_networks(self) -> bool:
        """Whether this commit reads ``allow_networks`` (before it, a fetch reached
        127.0.0.1 by default, and the key was unknown)."""
        code = self.snapshot / "aggregator"
        return any("allow_networks" in p.read_text("utf-8") for p in code.rglob("*.py"))


@dataclass
class Run:
    wall_s: float
    peak_pss_mb: float
    returncode: int
    stderr_tail: str


@dataclass
class Results:
    rows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # name -> [(a, b)]

    def add(self, name: str, a: float, b: float) -> None:
        self.rows.setdefault(name, []).append((a, b))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def snapshot(commit: str, dest: Path) -> Path:
    """``aggregator/`` of ``commit`` extracted into dest and byte-compiled."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = dest / "aggregator.tar"
    git("archive", "--format=tar", "-o", str(archive), commit, "aggregator")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(dest / "aggregator")],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return dest


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_kib(root: int) -> int:
    """PSS summed over root and all its descendants (shared pages counted once in all)."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _pss_kib(pid)
        stack.extend(_children(pid))
    return total


def run_sampled(cmd: Sequence[str], env: dict[str, str], timeout_s: float) -> Run:
    """Run cmd to completion: wall time and the peak of its process tree's summed PSS."""
    os.sync()
    time.sleep(1.0)  # no run pays for the last one's dirty pages
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(SAMPLE_SECONDS):
            peak = max(peak, tree_pss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return Run(wall, peak / 1024, proc.returncode, err.decode(errors="replace")[-2000:])


def aggregator_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aggregator", *args]


def pair_order(pair: int, a: Side, b: Side) -> tuple[Side, Side]:
    return (a, b) if pair % 2 == 0 else (b, a)


def bench_ingest(args: argparse.Namespace, a: Side, b: Side, results: Results) -> dict[str, str]:
    info = corpus.generate(args.out / "corpus", args.feeds, args.items, args.seed)
    print(f"corpus: {info.feeds} feeds, {info.unique_items} unique items")
    with NginxServer(Path(info.directory)) as server:
        check_http_caching(f"{server.base_url}/{info.feed_files[0]}")
        runs: dict[str, dict[str, list[Run]]] = {}
        for pair in range(args.pairs):
            for side in pair_order(pair, a, b):
                db = args.out / f"ingest-{side.label}.db"
                config = args.out / f"ingest-{side.label}.yaml"
                corpus.write_config(
                    config,
                    info,
                    server.port,
                    db,
                    workers=args.threads,
                    allow_networks=side.knows_allow_networks,
                )
                remove_sqlite(db)
                for phase in ("cold", "warm"):
                    cmd = aggregator_cmd("--config", str(config), "--log-level", "WARNING")
                    run = run_sampled([*cmd, "fetch"], side.env, args.timeout)
                    stored = sqlite_count(db, "items")
                    if run.returncode != 0 or stored != info.unique_items:
                        raise RuntimeError(
                            f"{side.label} {phase}: exit {run.returncode}, {stored} items "
                            f"(expected {info.unique_items})\n{run.stderr_tail}"
                        )
                    runs.setdefault(phase, {}).setdefault(side.label, []).append(run)
                    print(
                        f"  pair {pair + 1} {side.label} {phase}: {run.wall_s:6.2f} s, "
                        f"PSS peak {run.peak_pss_mb:6.1f} MB"
                    )
        for phase, by_side in runs.items():
            for ra, rb in zip(by_side["A"], by_side["B"], strict=True):
                results.add(f"ingest {phase}: wall s", ra.wall_s, rb.wall_s)
                name = f"ingest {phase}: peak PSS MB (all processes)"
                results.add(name, ra.peak_pss_mb, rb.peak_pss_mb)
    return {"corpus": f"{info.feeds} feeds x {args.items} items, {info.unique_items} unique"}


def render_ms(side: Side, db: Path, categories: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RENDER_PROBE, str(db), str(categories)],
        env=side.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=side.snapshot,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["uncached_ms"])


def serve_rates(side: Side, db: Path, out: Path, seconds: int) -> tuple[float, float]:
    """Cached-200 and 304 request rates of ``aggregator serve`` from this side's code."""
    config = out / "serve.yaml"
    config.write_text(f"database: sqlite:///{db}\nsite_url: http://bench\n", encoding="utf-8")
    port = free_port()
    cmd = aggregator_cmd("--config", str(config), "--log-level", "WARNING", "serve")
    server = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", str(os.cpu_count() or 1)],
        env=side.env,
        cwd=side.snapshot,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/feeds/outlet-0001.xml"
        for _ in range(150):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    etag = response.headers["ETag"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{side.label}: aggregator serve did not start")
        ok = wrk(url, seconds=seconds)
        not_modified = wrk(url, {"If-None-Match": etag}, seconds=seconds)
        if ok["errors"] or not_modified["errors"]:
            raise RuntimeError(f"{side.label}: errors under load: {ok} {not_modified}")
        return ok["rps"], not_modified["rps"]
    finally:
        server.terminate()
        server.wait(20)


def bench_serve(args: argparse.Namespace, a: Side, b: Side, results: Results) -> dict[str, str]:
    db = args.out / "serve-store.db"
    build_store(db, args.store_items, args.categories)
    got: dict[str, dict[str, list[float]]] = {}
    for pair in range(args.pairs):
        for side in pair_order(pair, a, b):
            rendered = render_ms(side, db, args.categories)
            rate_200, rate_304 = serve_rates(side, db, args.out, args.wrk_seconds)
            for name, value in (
                ("render uncached 50-item feed: ms", rendered),
                ("serve cached 200: req/s", rate_200),
                ("serve 304: req/s", rate_304),
            ):
                got.setdefault(name, {}).setdefault(side.label, []).append(value)
            print(
                f"  pair {pair + 1} {side.label}: render {rendered:.2f} ms, "
                f"200 {rate_200:,.0f}/s, 304 {rate_304:,.0f}/s"
            )
    for name, by_side in got.items():
        for va, vb in zip(by_side["A"], by_side["B"], strict=True):
            results.add(name, va, vb)
    return {"store": f"{args.store_items:,} items, {args.categories:,} categories (SQLite)"}


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def report(a: Side, b: Side, args: argparse.Namespace, facts: dict[str, str], r: Results) -> str:
    machine = machine_facts()
    lines = [
        f"## A/B: {a.commit[:7]} against {b.commit[:7]}",
        "",
        f"Generated by `python bench/abtest.py --base {a.commit[:7]} --head {b.commit[:7]} "
        f"--pairs {args.pairs} --what {','.join(args.what)}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine['nproc']} CPUs ({machine['cpu']}), "
        f"Python {machine['python']}. A = {a.commit[:7]}, B = {b.commit[:7]}; each from a "
        "byte-compiled snapshot of its `aggregator/`. Pairs alternate (A B, B A, ...); "
        "the ratio is B/A within each pair.",
        "",
        *[f"- {k}: {v}" for k, v in facts.items()],
        "",
        "| measurement | A median | B median | B/A median | B/A min | B/A max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, pairs in r.rows.items():
        ratios = [vb / va for va, vb in pairs if va]
        lines.append(
            f"| {name} | {fmt(statistics.median(va for va, _ in pairs))} "
            f"| {fmt(statistics.median(vb for _, vb in pairs))} "
            f"| {statistics.median(ratios):.3f} | {min(ratios):.3f} | {max(ratios):.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    title = section.splitlines()[0]
    text = path.read_text(encoding="utf-8")
    start = text.find(title)
    if start == -1:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end != -1 else "")
    path.write_text(text.rstrip() + "\n", encoding="utf-8")


BENCHES: dict[str, Callable[[argparse.Namespace, Side, Side, Results], dict[str, str]]] = {
    "ingest": bench_ingest,
    "serve": bench_serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="commit A")
    parser.add_argument("--head", default="HEAD", help="commit B (default HEAD)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--what", default="ingest,serve")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--store-items", type=int, default=1_000_000)
    parser.add_argument("--categories", type=int, default=2000)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out" / "ab")
    parser.add_argument("--docs", type=Path, help="write the section into this file")
    args = parser.parse_args(argv)
    args.what = [w for w in args.what.split(",") if w]
    if set(args.what) - set(BENCHES) or args.pairs < 1:
        parser.error(f"--what takes {','.join(BENCHES)}; --pairs at least 1")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    a = Side("A", git("rev-parse", args.base), args.out / "a")
    b = Side("B", git("rev-parse", args.head), args.out / "b")
    for side in (a, b):
        snapshot(side.commit, side.snapshot)
    results = Results()
    facts: dict[str, str] = {}
    for what in args.what:
        print(f"{what}: {args.pairs} alternated pairs")
        facts.update(BENCHES[what](args, a, b, results))
    section = report(a, b, args, facts, results)
    print(section)
    (args.out / "report.md").write_text(section, encoding="utf-8")
    if args.docs:
        write_docs(args.docs, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
