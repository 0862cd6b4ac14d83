"""Ingest benchmark: raw requests vs newsboat vs `aggregator fetch`, one served corpus.

    python bench/ingest.py [--feeds 1000] [--items 50] [--runs 3] [--out bench/out]

Generates the corpus (bench/corpus.py), serves it with a private nginx
(bench/nginx_server.py), then for each run measures cold and warm passes of each
tool as child processes (wall time + peak RSS, bench/measure.py). Prints a report,
writes <out>/results.json and <out>/report.md and, unless --no-docs, replaces the
"Ingest: N feeds x M items" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import corpus  # noqa: E402
from measure import ChildResult, machine_facts, run_measured  # noqa: E402
from nginx_server import NginxServer, nginx_version  # noqa: E402
from report import Summary, render_markdown, update_docs  # noqa: E402

TOOLS = ("raw", "newsboat", "ours")
PHASES = ("cold", "warm")
# newsboat 2.21 stores ETag/Last-Modified only when the feed row already exists
# (newsboat/newsboat#2734), so its 2nd reload is unconditional again; its warm
# pass is the 3rd reload, the first that sends If-None-Match and gets 304s.
TOOL_PHASES = {
    "raw": ("cold", "warm"),
    "newsboat": ("cold", "second", "warm"),
    "ours": ("cold", "warm"),
}


@dataclass
class Measurement:
    tool: str
    phase: str
    run: int
    wall_s: float
    peak_rss_mb: float
    ok: bool
    detail: str
    stored_items: int | None = None


@dataclass
class Context:
    corpus: corpus.CorpusInfo
    run_dir: Path
    urls_file: Path
    config_file: Path
    database: Path
    timeout_s: float
    threads: int
    ours_env: dict[str, str] | None = None
    ours_cwd: Path = REPO_ROOT
    measurements: list[Measurement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- checks


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )


def check_http_caching(url: str) -> dict[str, str]:
    """Verify nginx sends ETag and Last-Modified and answers conditionals with 304."""
    head = curl("-I", url).stdout
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in head.splitlines()[1:])
        if k.strip()
    }
    etag, last_modified = headers.get("etag"), headers.get("last-modified")
    if not etag or not last_modified:
        raise RuntimeError(f"nginx did not send ETag/Last-Modified for {url}:\n{head}")
    codes = {}
    for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified)):
        codes[name] = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", f"{name}: {value}", url)
        if codes[name].stdout != "304":
            raise RuntimeError(f"{name}: {value} gave HTTP {codes[name].stdout}, expected 304")
    return {"etag": etag, "last_modified": last_modified}


def sqlite_count(path: Path, table: str) -> int | None:
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.Error:
        return None
    return int(row[0])


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- tools


def record(
    ctx: Context,
    tool: str,
    phase: str,
    run: int,
    res: ChildResult,
    problem: str | None,
    stored: int | None = None,
) -> None:
    ok = res.ok and problem is None
    detail = "ok" if ok else (problem or res.describe())
    if not ok:
        ctx.errors.append(f"{tool} {phase} run {run}: {detail}")
    ctx.measurements.append(
        Measurement(tool, phase, run, res.wall_s, res.peak_rss_mb, ok, detail[:4000], stored)
    )
    status = "ok" if ok else "FAILED"
    extra = f", stored={stored}" if stored is not None else ""
    print(f"  {tool:8} {phase:6}: {res.wall_s:8.2f} s  {res.peak_rss_mb:7.1f} MB  {status}{extra}")


def run_raw(ctx: Context, phase: str, run: int) -> None:
    validators = ctx.run_dir / "raw-validators.json"
    cmd = [sys.executable, str(BENCH_DIR / "rawfetch.py"), "--urls", str(ctx.urls_file)]
    cmd += ["--threads", str(ctx.threads)]
    if phase == "cold":
        validators.unlink(missing_ok=True)
        cmd += ["--save-validators", str(validators)]
    else:
        cmd += ["--use-validators", str(validators)]
    res = run_measured(cmd, ctx.run_dir / f"raw-{phase}-{run}", ctx.timeout_s)
    expected = {"200" if phase == "cold" else "304": ctx.corpus.feeds}
    problem = None
    if res.ok:
        status = json.loads(res.stdout.strip().splitlines()[-1])["status"]
        if status != expected:
            problem = f"raw {phase}: status counts {status}, expected {expected}"
    record(ctx, "raw", phase, run, res, problem)


def newsboat_version() -> str:
    out = subprocess.run(
        ["newsboat", "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    return out.splitlines()[0].split(" - ")[0] if out else "unknown"


def run_newsboat(ctx: Context, phase: str, run: int) -> None:
    home = ctx.run_dir / "newsboat-home"
    cache = ctx.run_dir / "newsboat-cache.db"
    conf = ctx.run_dir / "newsboat.conf"
    if phase == "cold":
        shutil.rmtree(home, ignore_errors=True)
        remove_sqlite(cache)
    home.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        f"reload-threads {ctx.threads}\ndownload-timeout 20\ndownload-retries 1\n"
        "show-read-feeds yes\nmax-items 0\n",
        encoding="utf-8",
    )
    env = {**os.environ, "HOME": str(home), "TERM": "dumb"}
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("XDG_DATA_HOME", None)
    cmd = ["newsboat", "-x", "reload", "-u", str(ctx.urls_file), "-c", str(cache), "-C", str(conf)]
    res = run_measured(cmd, ctx.run_dir / f"newsboat-{phase}-{run}", ctx.timeout_s, env=env)
    stored = sqlite_count(cache, "rss_item")
    problem = None
    if res.ok and stored != ctx.corpus.unique_items:
        problem = (
            f"newsboat {phase}: rss_item has {stored} rows, expected {ctx.corpus.unique_items}"
        )
    record(ctx, "newsboat", phase, run, res, problem, stored)


def aggregator_command() -> list[str]:
    exe = shutil.which("aggregator")
    return [exe] if exe else [sys.executable, "-m", "aggregator"]


def run_ours(ctx: Context, phase: str, run: int) -> None:
    if phase == "cold":
        remove_sqlite(ctx.database)
    cmd = [*aggregator_command(), "--config", str(ctx.config_file), "fetch"]
    res = run_measured(
        cmd, ctx.run_dir / f"ours-{phase}-{run}", ctx.timeout_s, env=ctx.ours_env, cwd=ctx.ours_cwd
    )
    stored = sqlite_count(ctx.database, "items")
    problem = None
    if res.ok and stored != ctx.corpus.unique_items:
        problem = (
            f"ours {phase}: SELECT count(*) FROM items = {stored}, "
            f"expected {ctx.corpus.unique_items} unique infoCodes\n{res.describe()}"
        )
    record(ctx, "ours", phase, run, res, problem, stored)


RUNNERS: dict[str, Callable[[Context, str, int], None]] = {
    "raw": run_raw,
    "newsboat": run_newsboat,
    "ours": run_ours,
}


# --------------------------------------------------------------------------- driver


def git_commit() -> str:
    """Short HEAD of the repo, '+dirty' if aggregator/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "aggregator"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def snapshot_aggregator(dest: Path) -> Path:
    """Extract HEAD's aggregator/ into dest, so edits during the run cannot leak in."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = dest / "aggregator.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), "HEAD", "aggregator"],
        cwd=REPO_ROOT,
        check=True,
        timeout=60,
        capture_output=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    # byte-compiled as pip compiles an installed package, so the first timed pass does not
    # pay for compiling every module (0.2-0.3 s)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(dest / "aggregator")],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return dest


def snapshot_env(snapshot: Path) -> dict[str, str]:
    """Environment whose `aggregator` imports come from the snapshot (checked here)."""
    env = {**os.environ, "PYTHONPATH": str(snapshot)}
    probe = subprocess.run(
        [sys.executable, "-c", "import aggregator; print(aggregator.__file__)"],
        env=env,
        cwd=snapshot,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not probe.stdout.strip().startswith(str(snapshot)):
        raise RuntimeError(f"snapshot not importable first: {probe.stdout}{probe.stderr}")
    return env


def source_fingerprint() -> str:
    """Hash of aggregator/**/*.py, to notice the code changing mid-benchmark."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "aggregator").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine_info(live: bool) -> dict[str, str]:
    return {
        **machine_facts(),
        "nginx": nginx_version(),
        "newsboat": newsboat_version(),
        "aggregator": " ".join(Path(p).name for p in aggregator_command()),
        "commit": git_commit() if live else git_commit().removesuffix("+dirty") + " (snapshot)",
    }


def summarize(ctx: Context, tools: list[str]) -> list[Summary]:
    out: list[Summary] = []
    for tool in tools:
        per_phase: dict[str, list[Measurement]] = {
            ph: [m for m in ctx.measurements if m.tool == tool and m.phase == ph] for ph in PHASES
        }
        second = [m for m in ctx.measurements if m.tool == tool and m.phase == "second"]
        ok = all(m.ok for ms in (*per_phase.values(), second) for m in ms) and all(
            per_phase.values()
        )
        out.append(
            Summary(
                tool=tool,
                cold_s=median(m.wall_s for m in per_phase["cold"]) if per_phase["cold"] else None,
                warm_s=median(m.wall_s for m in per_phase["warm"]) if per_phase["warm"] else None,
                cold_rss_mb=median(m.peak_rss_mb for m in per_phase["cold"])
                if per_phase["cold"]
                else None,
                warm_rss_mb=median(m.peak_rss_mb for m in per_phase["warm"])
                if per_phase["warm"]
                else None,
                max_rss_mb=max(
                    (m.peak_rss_mb for ms in per_phase.values() for m in ms), default=None
                ),
                stored_items=next(
                    (m.stored_items for m in per_phase["cold"] if m.stored_items is not None), None
                ),
                ok=ok,
                runs_cold=[round(m.wall_s, 3) for m in per_phase["cold"]],
                runs_warm=[round(m.wall_s, 3) for m in per_phase["warm"]],
                second_s=median(m.wall_s for m in second) if second else None,
            )
        )
    return out


def prepare_corpus(out: Path, feeds: int, items: int, seed: int) -> corpus.CorpusInfo:
    corpus_dir = out / "corpus"
    shutil.rmtree(corpus_dir, ignore_errors=True)
    print(f"generating corpus: {feeds} feeds x {items} items -> {corpus_dir}")
    info = corpus.generate(corpus_dir, feeds, items, seed)
    print(
        f"  {info.item_slots} item slots, {info.unique_items} unique, "
        f"{info.total_bytes / 1e6:.1f} MB"
    )
    return info


def run_benchmark(
    args: argparse.Namespace,
    info: corpus.CorpusInfo,
    server: NginxServer,
    ours_env: dict[str, str] | None,
    ours_cwd: Path,
) -> Context:
    run_dir = (args.out / "run").resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    ctx = Context(
        corpus=info,
        run_dir=run_dir,
        urls_file=run_dir / "urls.txt",
        config_file=run_dir / "config.yaml",
        database=run_dir / "bench.db",
        timeout_s=args.timeout,
        threads=args.threads,
        ours_env=ours_env,
        ours_cwd=ours_cwd,
    )
    ctx.urls_file.write_text(
        "\n".join(corpus.feed_urls(info, server.port)) + "\n", encoding="utf-8"
    )
    corpus.write_config(ctx.config_file, info, server.port, ctx.database, workers=args.threads)
    for run in range(1, args.runs + 1):
        print(f"run {run}/{args.runs}")
        for tool in args.tools:
            for phase in TOOL_PHASES[tool]:
                RUNNERS[tool](ctx, phase, run)
    return ctx


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Ingest benchmark (raw / newsboat / ours)")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=16, help="concurrency of every tool")
    parser.add_argument("--timeout", type=float, default=900.0, help="per child process, s")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma list of " + ",".join(TOOLS))
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument(
        "--live",
        action="store_true",
        help="run ours from the working tree instead of a snapshot of HEAD's aggregator/",
    )
    args = parser.parse_args(argv)
    args.tools = [t for t in args.tools.split(",") if t]
    unknown = set(args.tools) - set(TOOLS)
    if unknown or args.runs < 1 or args.feeds < 1 or args.items < 1:
        parser.error(f"bad arguments (unknown tools: {sorted(unknown)})")
    args.out = args.out.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    info = prepare_corpus(args.out, args.feeds, args.items, args.seed)
    machine = machine_info(args.live)
    fingerprint = source_fingerprint()
    ours_env, ours_cwd = None, REPO_ROOT
    if not args.live and "ours" in args.tools:
        ours_cwd = snapshot_aggregator(args.out / "snapshot")
        ours_env = snapshot_env(ours_cwd)
        print(f"ours runs from a snapshot of HEAD ({machine['commit']}) in {ours_cwd}")
    with NginxServer(Path(info.directory)) as server:
        caching = check_http_caching(f"{server.base_url}/{info.feed_files[0]}")
        print(f"nginx on {server.base_url}: ETag {caching['etag']}, 304 on If-None-Match: ok")
        ctx = run_benchmark(args, info, server, ours_env, ours_cwd)
    if args.live and "ours" in args.tools and source_fingerprint() != fingerprint:
        ctx.errors.append(
            "aggregator/ source changed during the benchmark: results mix code versions"
        )
    summaries = summarize(ctx, args.tools)
    markdown, verdicts = render_markdown(machine, info, summaries, args.runs, ctx.errors)
    print()
    print(markdown)
    (args.out / "report.md").write_text(markdown, encoding="utf-8")
    results = {
        "machine": machine,
        "corpus": {k: v for k, v in asdict(info).items() if k != "feed_files"},
        "summaries": [asdict(s) for s in summaries],
        "verdicts": verdicts,
        "measurements": [asdict(m) for m in ctx.measurements],
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    if not args.no_docs:
        update_docs(args.docs, markdown)
        print(f"updated {args.docs}")
    return 0 if not ctx.errors and all(v["pass"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
