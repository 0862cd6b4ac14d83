"""The soak run's load generator and process sampler (used by bench/soak.py).

``LoadGenerator`` polls the service's outputs from a few threads at a steady total rate:
category feeds in all three formats (half of them with If-None-Match), /feeds/all,
merged and filtered feeds, /api/items by category and since a seq, category pages,
the home page, item pages, /api/categories, /api/sources, /healthz and /readyz. One more
thread is an API consumer that keeps following ``next_cursor`` and remembers every id it
saw. Any answer other than 200/304, a body that does not parse, or a connection error is
counted as an error, with its first examples kept.

``Sampler`` reads a process's RSS, peak RSS, open file descriptors, threads and CPU time
from /proc every few seconds. No business logic.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import requests

REQUEST_TIMEOUT_SECONDS = 30.0
CURSOR_PAGE_LIMIT = 500
CURSOR_IDLE_SECONDS = 2.0
MAX_EXAMPLES = 20


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the service started
    rss_mb: float
    hwm_mb: float  # the kernel's peak RSS so far (VmHWM)
    fds: int
    sockets: int  # of the fds
    threads: int
    cpu_seconds: float
    load1: float  # the machine's 1-minute load average: other work competes for the CPUs


def read_sample(pid: int, t: float) -> Sample | None:
    """One reading of /proc/PID, or None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(FileNotFoundError):  # closed since listed
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    kib = {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM") if k in fields}
    ticks = stat.rsplit(")", 1)[1].split()  # fields after the command name
    cpu = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return Sample(
        t=round(t, 1),
        rss_mb=kib.get("VmRSS", 0) / 1024,
        hwm_mb=kib.get("VmHWM", 0) / 1024,
        fds=len(links),
        sockets=sum(link.startswith("socket:") for link in links),
        threads=int(fields["Threads"]),
        cpu_seconds=cpu,
        load1=float(Path("/proc/loadavg").read_text().split()[0]),
    )


def cpu_seconds(pid: int) -> float | None:
    sample = read_sample(pid, 0.0)
    return sample.cpu_seconds if sample else None


class Sampler:
    def __init__(self, pid: int, started: float, every_seconds: float) -> None:
        self.pid = pid
        self.started = started
        self.every_seconds = every_seconds
        self.samples: list[Sample] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def sample_now(self) -> Sample | None:
        sample = read_sample(self.pid, time.monotonic() - self.started)
        if sample is not None:
            self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self.stopping.is_set():
            if self.sample_now() is None:
                return
            self.stopping.wait(self.every_seconds)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


# --------------------------------------------------------------------------- load


@dataclass
class EndpointStats:
    requests: int = 0
    status: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return (
                round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1) if ordered else None
            )

        return {
            "requests": self.requests,
            "status": dict(self.status),
            "errors": self.errors,
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1], 1) if ordered else None,
        }


Check = Callable[[bytes], None]  # raises when a 200 body is not what its type promises


def check_json(body: bytes) -> None:
    json.loads(body)


def check_xml(body: bytes) -> None:
    ElementTree.fromstring(body)  # trusted local service: well-formedness only


def check_html(body: bytes) -> None:
    if b"</html>" not in body[-200:]:
        raise ValueError("HTML page does not end with </html>")


def check_for(path: str) -> Check:
    if path.startswith("/api/") or path.startswith("/healthz") or path.startswith("/readyz"):
        return check_json
    if path.startswith("/feeds/"):
        ext = path.split("?")[0].rsplit(".", 1)[-1]
        return check_json if ext == "json" else check_xml
    return check_html


class LoadGenerator:
    """``rate`` requests/s in total from ``threads`` threads plus one cursor consumer."""

    MIX: tuple[tuple[str, int], ...] = (
        ("feed (category)", 40),
        ("feed (all)", 8),
        ("feed (merge)", 4),
        ("feed (q=)", 3),
        ("api/items (category)", 8),
        ("api/items (since)", 5),
        ("category page", 10),
        ("home page", 4),
        ("item page", 6),
        ("api/categories", 4),
        ("api/sources", 1),
        ("healthz/readyz", 4),
    )

    def __init__(self, base_url: str, rate: float, threads: int, seed: int = 1) -> None:
        self.base_url = base_url
        self.rate = rate
        self.threads = threads
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stats: dict[str, EndpointStats] = {}
        self.examples: list[str] = []
        self.etags: dict[str, str] = {}
        self.slugs: list[str] = []
        self.pages: dict[str, int] = {}  # slug: its page count (a page past the last is a 404)
        self.item_pages: deque[str] = deque(maxlen=500)
        self.max_seq = 0
        self.cursor: str | None = None
        self.cursor_ids: set[str] = set()
        self.cursor_entries = 0
        self.cursor_repeats = 0  # an id seen again without is_update: a broken promise
        self.stopping = threading.Event()
        self.workers: list[threading.Thread] = []

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        self._refresh_categories(requests.Session())
        names = [f"load-{n}" for n in range(self.threads)]
        self.workers = [threading.Thread(target=self._worker, name=n, daemon=True) for n in names]
        self.workers.append(threading.Thread(target=self._consumer, name="cursor", daemon=True))
        for thread in self.workers:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.workers:
            thread.join()

    def total(self) -> tuple[int, int]:
        with self.lock:
            return (
                sum(s.requests for s in self.stats.values()),
                sum(s.errors for s in self.stats.values()),
            )

    def results(self) -> dict[str, Any]:
        with self.lock:
            return {
                "endpoints": {name: s.summary() for name, s in sorted(self.stats.items())},
                "requests": sum(s.requests for s in self.stats.values()),
                "errors": sum(s.errors for s in self.stats.values()),
                "examples": list(self.examples),
                "cursor_entries": self.cursor_entries,
                "cursor_unique_ids": len(self.cursor_ids),
                "cursor_repeats": self.cursor_repeats,
            }

    # ------------------------------------------------------------------ one request

    def get(
        self, session: requests.Session, label: str, path: str, conditional: bool = False
    ) -> requests.Response | None:
        """GET path, count it under label; return the response when it was a good 200."""
        headers = {}
        if conditional and path in self.etags:
            headers["If-None-Match"] = self.etags[path]
        started = time.perf_counter()
        problem = None
        response = None
        try:
            response = session.get(
                self.base_url + path, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
            )
            code = str(response.status_code)
            if response.status_code == 200:
                check_for(path)(response.content)
                if "ETag" in response.headers:
                    self.etags[path] = response.headers["ETag"]
            elif response.status_code != 304:
                problem = f"HTTP {code}: {response.text[:200]!r}"
        except requests.RequestException as e:
            code = type(e).__name__
            problem = f"{code}: {e}"
        except ValueError as e:  # json / XML / HTML check of a 200 body
            code = "bad body"
            problem = f"bad body: {e}"
        elapsed_ms = (time.perf_counter() - started) * 1000
        with self.lock:
            stats = self.stats.setdefault(label, EndpointStats())
            stats.requests += 1
            stats.status[code] += 1
            stats.latencies_ms.append(elapsed_ms)
            if problem:
                stats.errors += 1
                if len(self.examples) < MAX_EXAMPLES:
                    self.examples.append(f"{time.strftime('%H:%M:%S')} GET {path}: {problem}")
        return response if problem is None and response is not None else None

    # ------------------------------------------------------------------ the mix

    def _refresh_categories(self, session: requests.Session) -> None:
        response = self.get(session, "api/categories", "/api/categories")
        if response is not None:
            self._remember_categories(response)

    def _remember_categories(self, response: requests.Response) -> None:
        if response.status_code == 200:  # a 304 keeps what we know
            self.slugs = [c["slug"] for c in response.json() if c["items"]] or self.slugs
            self.pages = {c["slug"]: -(-c["items"] // 50) for c in response.json()} or self.pages

    def _path(self, label: str, rng: random.Random) -> str | None:
        slug = rng.choice(self.slugs) if self.slugs else None
        ext = rng.choice(("xml", "atom", "json"))
        if label == "feed (all)":
            return f"/feeds/all.{ext}"
        if label == "api/categories":
            return "/api/categories"
        if label == "api/sources":
            return "/api/sources"
        if label == "healthz/readyz":
            return rng.choice(("/healthz", "/readyz"))
        if label == "home page":
            return "/"
        if label == "api/items (since)":
            return f"/api/items?since={rng.randint(0, max(self.max_seq, 1))}&limit=100"
        if label == "item page":
            return rng.choice(self.item_pages) if self.item_pages else None
        if slug is None:
            return None
        if label == "feed (category)":
            return f"/feeds/{slug}.{ext}"
        if label == "feed (merge)":
            other = rng.choice(self.slugs)
            return f"/feeds/merge.{ext}?c={slug},{other}"
        if label == "feed (q=)":
            return f"/feeds/{slug}.{ext}?q={rng.choice(('央行', '基金|债券', '指数'))}&limit=20"
        if label == "api/items (category)":
            return f"/api/items?category={slug}&limit=50"
        if label == "category page":
            return f"/category/{slug}.html?page={rng.randint(1, min(3, self.pages.get(slug, 1)))}"
        raise AssertionError(label)

    def _worker(self) -> None:
        session = requests.Session()
        with self.lock:
            rng = random.Random(self.rng.random())
        labels = [label for label, _ in self.MIX]
        weights = [weight for _, weight in self.MIX]
        interval = self.threads / self.rate
        due = time.monotonic()
        while not self.stopping.is_set():
            label = rng.choices(labels, weights)[0]
            path = self._path(label, rng)
            try:
                if path is not None:
                    response = self.get(session, label, path, conditional=rng.random() < 0.5)
                    if label == "api/categories" and response is not None:
                        self._remember_categories(response)
            except Exception as e:  # a bug here must show, not silently thin the load
                self._count_failure("load generator", f"{path}: {type(e).__name__}: {e}")
            due = max(due + interval, time.monotonic() - interval)
            self.stopping.wait(max(0.0, due - time.monotonic()))

    def _count_failure(self, label: str, problem: str) -> None:
        with self.lock:
            stats = self.stats.setdefault(label, EndpointStats())
            stats.requests += 1
            stats.errors += 1
            stats.status["exception"] += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(f"{time.strftime('%H:%M:%S')} {label}: {problem}")

    def _consumer(self) -> None:
        """Follow next_cursor from the start, as a client of /api/items would."""
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                has_more = self.consume_page(session)
            except Exception as e:  # see _worker
                self._count_failure("load generator", f"cursor: {type(e).__name__}: {e}")
                has_more = False
            self.stopping.wait(self.threads / self.rate if has_more else CURSOR_IDLE_SECONDS)

    def consume_page(self, session: requests.Session, label: str = "api/items (cursor)") -> bool:
        """One page after the cursor; remember its ids. Returns has_more (False on error)."""
        path = f"/api/items?limit={CURSOR_PAGE_LIMIT}"
        if self.cursor:
            path += f"&cursor={quote(self.cursor)}"
        response = self.get(session, label, path)
        if response is None:
            return False
        page = response.json()
        for item in page["items"]:
            if item["id"] in self.cursor_ids and not item["is_update"]:
                self.cursor_repeats += 1
            self.cursor_ids.add(item["id"])
            self.cursor_entries += 1
            self.item_pages.append(item["page_url"].removeprefix(self.base_url))
            self.max_seq = max(self.max_seq, item["seq"])
        self.cursor = page["next_cursor"]
        return bool(page["has_more"])


def sample_dicts(samples: list[Sample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
