"""A fetch pass over several processes: forked children sharing the claimed sources.

    parent: claim every source, fork the other processes, then fetch alongside them
            while the lease keeper runs; collect the children's outcomes as they come
    child:  fetch, parse, decide and write on threads (scheduler._fetch_claimed, with its
            own store connections and group committer); send each outcome to the parent
            as it is recorded
    all:    each fetch thread of each process takes the next unfetched source from one
            counter in shared memory (``SharedCursor``) whenever it is free

Taking sources as they go, not in fixed shards, keeps the processes busy to the end: a
process that runs faster (no collector thread, a luckier share of long feeds) takes
more. With fixed halves of 1,000 feeds one process finished up to 0.4 s before the
other, one core idle meanwhile.

Parsing and deciding are CPU-bound Python, which threads in one process cannot spread
over several cores. SQLite writers of the processes take turns on the writer lock
(store/sql.py).

Forked, not spawned: children start in milliseconds with everything imported instead of
importing it all again (0.4 s a child), which also makes a pass of 304s worth sharding.
The fork happens while the parent is its only thread (``can_fork``) and after the store
closed its connections (an SQLite connection must not cross a fork).

Measured and dropped: one writer process for the whole pass, fed by the children
through pipes (no writer competing with parser threads for the GIL). On 2 cores the
writer then competed with two fetching children for CPU instead, pickling a fetch's
intents cost 0.6 ms, and a cold pass of 1,000 feeds took 7.5-8.2 s against 6.4-6.5 s.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.errors import ShardError
from aggregator.model import FetchOutcome, SourceState

if TYPE_CHECKING:
    from aggregator.config.settings import Settings
    from aggregator.ingest.update import Context


class Cursor(Protocol):
    """Hands out a pass's claimed sources one at a time, to every thread that asks."""

    def take(self) -> SourceState | None:
        """The next source to fetch, or None when every one has been taken."""


class LocalCursor:
    """A cursor for the threads of one process."""

    def __init__(self, claimed: Sequence[SourceState]) -> None:
        self._claimed = iter(claimed)
        self._lock = threading.Lock()

    def take(self) -> SourceState | None:
        with self._lock:
            return next(self._claimed, None)


class SharedCursor:
    """A cursor for the threads of several forked processes: the index of the next source
    is a counter in shared memory under a process-shared lock, made before the fork;
    every process has the same list of sources (copied by the fork)."""

    def __init__(self, claimed: Sequence[SourceState]) -> None:
        self._claimed = list(claimed)
        self._next = multiprocessing.get_context("fork").Value("q", 0)

    def take(self) -> SourceState | None:
        with self._next.get_lock():
            index: int = self._next.value
            if index >= len(self._claimed):
                return None
            self._next.value = index + 1
        return self._claimed[index]


# scheduler._fetch_claimed: (ctx, cursor, workers, on_outcome) -> outcomes
FetchRunner = Callable[
    ["Context", Cursor, int, Callable[[FetchOutcome], None] | None],
    list[FetchOutcome],
]


def can_fork() -> bool:
    """Whether a pass may fork: on Linux, while this is the only thread (a child gets a
    copy of every lock, and one that another thread held stays held there)."""
    return (
        sys.platform == "linux"
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


class _Reporter:
    """A child's end of its pipe: outcomes as they are recorded, then ``done``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def report(self, outcome: FetchOutcome) -> None:
        with self.lock:
            self.conn.send(("outcome", outcome))

    def finish(self) -> None:
        with self.lock:
            self.conn.send(("done", None))


def _exit_with_parent() -> None:
    """In a child: exit as soon as the pass that forked it is gone.

    A SIGKILLed ``aggregator fetch`` must take its children with it. Otherwise they went
    on fetching under the dead parent's leases (racing the pass run next), then hung
    (issue #4). Dying mid-write is safe: each source's write is one savepoint.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the process pipe closes
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _child_main(
    settings: Settings,
    owner: str,
    cursor: Cursor,
    workers: int,
    conn: Connection,
    run: FetchRunner,
    contexts: ShardContexts,
) -> None:
    _exit_with_parent()
    reporter = _Reporter(conn)
    ctx = replace(contexts.open(settings, False), owner=owner)
    try:
        run(ctx, cursor, workers, reporter.report)
    finally:
        contexts.close(ctx)
    reporter.finish()
    conn.close()


class _Child:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.outcomes: list[FetchOutcome] = []
        self.finished = False


@dataclass(frozen=True, slots=True)
class ShardContexts:
    """How a forked child opens its own store and fetcher (``open(settings, migrate)``)
    and closes them: passed in by the scheduler, so this module needs no service wiring."""

    open: Callable[[Settings, bool], Context]
    close: Callable[[Context], None]


class Background(Protocol):
    """A helper thread of the pass (the lease keeper): started once the children exist."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


def run_shards(
    ctx: Context,
    claimed: Sequence[SourceState],
    processes: int,
    workers: int,
    run: FetchRunner,
    on_outcome: Callable[[FetchOutcome], None] | None,
    helper: Background,
    contexts: ShardContexts,
) -> list[FetchOutcome]:
    """Fetch ``claimed`` in ``processes`` processes (this one and forked children) of
    ``workers`` threads each, and return all the outcomes. ``on_outcome`` is called from
    several threads, one at a time. ``helper`` runs from the fork to the end. Raises
    ShardError, once the others finished, if a child died before reporting."""
    fork = multiprocessing.get_context("fork")
    cursor = SharedCursor(claimed)
    ctx.store.release_connections()
    children: list[_Child] = []
    for _ in range(processes - 1):
        mine, theirs = fork.Pipe(duplex=False)
        process = fork.Process(
            target=_child_main,
            args=(ctx.settings, ctx.owner, cursor, workers, theirs, run, contexts),
            name="aggregator-shard",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child's copy stays open: EOF here means it is gone
        children.append(_Child(process, mine))
    helper.start()
    # read the children's outcomes while this process fetches: a full pipe would stall
    # a child, and the progress bar follows every process
    reporting = _one_at_a_time(on_outcome)
    collector = threading.Thread(
        target=_collect, args=(children, reporting), name="shard-outcomes", daemon=True
    )
    collector.start()
    try:
        outcomes = run(ctx, cursor, workers, reporting)
        collector.join()
    finally:
        helper.stop()
        for child in children:
            child.conn.close()
            child.process.join()
    failed = [child for child in children if not child.finished]
    if failed:
        raise ShardError(
            "; ".join(
                f"a fetch process exited with code {child.process.exitcode} before "
                "reporting: what it wrote is stored, and the leases of the sources it had "
                "taken come free for the next pass"
                for child in failed
            )
        )
    return outcomes + [outcome for child in children for outcome in child.outcomes]


def _one_at_a_time(
    on_outcome: Callable[[FetchOutcome], None] | None,
) -> Callable[[FetchOutcome], None] | None:
    if on_outcome is None:
        return None
    lock = threading.Lock()

    def call(outcome: FetchOutcome) -> None:
        with lock:
            on_outcome(outcome)

    return call


def _collect(children: list[_Child], on_outcome: Callable[[FetchOutcome], None] | None) -> None:
    open_conns = {child.conn: child for child in children}
    while open_conns:
        try:
            ready = wait(list(open_conns))
        except (OSError, ValueError):  # the pass is ending early and closed the pipes
            return
        for conn in ready:
            child = open_conns[conn]  # type: ignore[index]
            try:
                kind, payload = child.conn.recv()
            except (EOFError, OSError):
                del open_conns[child.conn]
                continue
            if kind == "done":
                child.finished = True
                del open_conns[child.conn]
            else:
                child.outcomes.append(payload)
                if on_outcome is not None:
                    on_outcome(payload)
