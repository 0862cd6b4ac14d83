"""A fetch pass over several processes: forked children, each with a shard of the claim.

    parent: claim every source, fork a child per other shard, then fetch its own shard
            while the lease keeper runs; collect the children's outcomes as they come
    child:  fetch, parse, decide and write its shard on threads (scheduler._fetch_claimed,
            with its own store connections and group committer); send each outcome to
            the parent as it is recorded

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
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.errors import ShardError
from aggregator.model import FetchOutcome, SourceState

if TYPE_CHECKING:
    from aggregator.config import Settings
    from aggregator.update import Context

# scheduler._fetch_claimed: (ctx, claimed, workers, on_outcome) -> outcomes
FetchRunner = Callable[
    ["Context", Sequence[SourceState], int, Callable[[FetchOutcome], None] | None],
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
    claimed: list[SourceState],
    workers: int,
    conn: Connection,
    run: FetchRunner,
) -> None:
    from aggregator.service import close_context, open_context

    _exit_with_parent()
    reporter = _Reporter(conn)
    ctx = replace(open_context(settings, migrate=False), owner=owner)
    try:
        run(ctx, claimed, workers, reporter.report)
    finally:
        close_context(ctx)
    reporter.finish()
    conn.close()


class _Child:
    def __init__(self, process: Any, conn: Connection, size: int) -> None:
        self.process = process
        self.conn = conn
        self.size = size
        self.outcomes: list[FetchOutcome] = []
        self.finished = False


class Background(Protocol):
    """A helper thread of the pass (the lease keeper): started once the children exist."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


def run_shards(
    ctx: Context,
    shards: Sequence[list[SourceState]],
    workers: int,
    run: FetchRunner,
    on_outcome: Callable[[FetchOutcome], None] | None,
    helper: Background,
) -> list[FetchOutcome]:
    """Fork a child for every shard but the first, run the first here, and return all
    the outcomes. ``on_outcome`` is called from two threads (this one, and the one
    reading the children's pipes). ``helper`` runs from the fork to the end. Raises
    ShardError, once the others finished, if a child died before reporting its shard."""
    fork = multiprocessing.get_context("fork")
    ctx.store.release_connections()
    children: list[_Child] = []
    for shard in shards[1:]:
        mine, theirs = fork.Pipe(duplex=False)
        process = fork.Process(
            target=_child_main,
            args=(ctx.settings, ctx.owner, shard, workers, theirs, run),
            name="aggregator-shard",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child's copy stays open: EOF here means it is gone
        children.append(_Child(process, mine, len(shard)))
    helper.start()
    # read the children's outcomes while this process fetches: a full pipe would stall
    # a child, and the progress bar follows every shard
    collector = threading.Thread(
        target=_collect, args=(children, on_outcome), name="shard-outcomes", daemon=True
    )
    collector.start()
    try:
        outcomes = run(ctx, shards[0], workers, on_outcome)
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
                f"a fetch process ({child.size} sources) exited with code "
                f"{child.process.exitcode} before reporting: what it wrote is stored, and "
                "its sources' leases come free for the next pass"
                for child in failed
            )
        )
    return outcomes + [outcome for child in children for outcome in child.outcomes]


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
