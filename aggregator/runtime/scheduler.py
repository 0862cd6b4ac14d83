"""Running updates: the long-lived dispatcher (``aggregator run``) and a one-shot pass
(``aggregator fetch``).

The schedule lives in the database (each source's ``next_due_at``), not in APScheduler's
memory: a restart resumes where it stopped, and several processes can share one schedule
because a source is only fetched under a lease it claimed. APScheduler drives the
dispatcher's tick and (later) periodic housekeeping.

    every tick (1 s):
        free = workers - in flight
        claimed = store.claim_due_sources(now, owner, free, lease)
        submit update_source(each) to the bounded thread pool

At start, sources that fell due while nothing ran are spread over a window (their
interval, at most ``STARTUP_SPREAD``) so a restart is not a burst, and none is skipped.
SIGTERM/SIGINT stop claiming, let fetches in flight finish (each is one transaction, so
an interrupted one writes nothing), and release the leases.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aggregator.config.settings import Settings, Source
from aggregator.errors import AggregatorError
from aggregator.ingest.freshness import spread_overdue
from aggregator.ingest.update import Context, update_source
from aggregator.model import FetchOutcome, ItemIntent, SourceState
from aggregator.runtime.housekeeping import run_housekeeping_if_due
from aggregator.runtime.owners import dead_local_owners, is_pid_alive, this_machine
from aggregator.runtime.politeness import HostTurns, PoliteCursor
from aggregator.runtime.service import close_context, open_context
from aggregator.runtime.service import configured_categories as configured_categories
from aggregator.runtime.service import source_plans as source_plans
from aggregator.runtime.shards import Cursor, LocalCursor, ShardContexts, can_fork, run_shards
from aggregator.store import HostLimits, SourceUpdate, WriteCounts
from aggregator.store.batching import GroupCommitter, should_wait_for

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
HOUSEKEEPING_CHECK_SECONDS = 60.0  # how often a process asks whether housekeeping is due
STARTUP_SPREAD = timedelta(minutes=5)
MIN_LEASE = timedelta(seconds=3)


def release_dead_leases(ctx: Context) -> None:
    """Free the sources leased by processes of this machine that died (SIGKILL, OOM,
    power cut) instead of leaving them until the lease expires: without it an
    ``aggregator fetch`` run right after a killed one skipped every source the dead
    process had claimed, for twice the fetch deadline (issue #4)."""
    if os.name != "posix":
        return  # os.kill(pid, 0) would terminate the process on Windows
    owners = ctx.store.list_lease_owners(ctx.now())
    for owner in dead_local_owners(owners, this_machine(), is_pid_alive):
        released = ctx.store.release_leases(owner)
        log.warning("released %d lease(s) of %s: that process is gone", released, owner)


def lease_for(settings: Settings) -> timedelta:
    """How long a claim holds without renewal (``defaults.lease``); a LeaseKeeper renews
    it every third of that while the fetch runs, so a slow fetch keeps its source and a
    dead worker's sources come free within one lease."""
    return max(settings.defaults.lease, MIN_LEASE)


class LeaseKeeper:
    """Renews this process's leases on the sources ``held()`` names, every third of the
    lease, until stopped. A renewal that fails is logged and tried again next time: the
    lease has two more thirds to run."""

    def __init__(
        self, ctx: Context, lease: Callable[[], timedelta], held: Callable[[], Sequence[str]]
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.held = held
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def start(self) -> LeaseKeeper:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.wait(self.lease().total_seconds() / 3):
            ids = list(self.held())
            if not ids:
                continue
            try:
                self.ctx.store.renew_leases(ids, self.ctx.owner, self.ctx.now() + self.lease())
            except AggregatorError as e:
                log.error("could not renew %d lease(s): %s", len(ids), e)

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)


def housekeeping_check_seconds(settings: Settings) -> float:
    """How often a process asks whether housekeeping is due: a quarter of the period,
    between 1 s and a minute (so a short test period is honoured, a long one cheap)."""
    return min(
        HOUSEKEEPING_CHECK_SECONDS, max(1.0, settings.housekeeping.every.total_seconds() / 4)
    )


def host_limits(settings: Settings) -> HostLimits:
    return HostLimits(settings.per_host.max_concurrent, settings.per_host.max_per_minute)


def sync_and_spread(ctx: Context) -> None:
    """Make the database follow the config, then spread what fell due while down."""
    now = ctx.now()
    ctx.store.sync_config(source_plans(ctx.settings), configured_categories(ctx.settings), now)
    release_dead_leases(ctx)
    intervals = {s.id: s.effective_interval(ctx.settings.defaults) for s in ctx.settings.sources}
    overdue = [(sid, intervals[sid]) for sid, _ in ctx.store.list_overdue(now) if sid in intervals]
    if overdue:
        ctx.store.set_due_times(spread_overdue(overdue, now, STARTUP_SPREAD))


def _safe_update(ctx: Context, source: Source, state: SourceState) -> FetchOutcome | None:
    """update_source, with a last guard: a bug in one source's update must not kill the
    worker thread or leave its lease held."""
    try:
        return update_source(ctx, source, state)
    except AggregatorError as e:  # the store itself failed: the fetch was not recorded
        log.error("%s: could not record the fetch: %s", source.id, e)
    except Exception:
        log.exception("%s: unexpected error in update", source.id)
    try:
        ctx.store.release_lease(source.id, ctx.owner)
    except AggregatorError as e:
        log.error("%s: could not release the lease: %s", source.id, e)
    return None


class Dispatcher:
    """Claims due sources and runs them on a bounded pool (see the module docstring)."""

    def __init__(
        self,
        ctx: Context,
        on_outcome: Callable[[FetchOutcome], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.committer = GroupCommitter(ctx.store, on_batch=on_batch)
        self.ctx = replace(ctx, sink=self.committer)
        self.workers = ctx.settings.defaults.workers
        self.lease = lease_for(ctx.settings)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fetch")
        self.in_flight: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.on_outcome = on_outcome
        from apscheduler.schedulers.background import BackgroundScheduler

        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.last_tick_at: float | None = None  # time.monotonic() of the last tick
        self.keeper = LeaseKeeper(ctx, lambda: self.lease, self._held)
        self.tick_lock = threading.Lock()
        self.saturated = False  # the last claim filled every free slot

    def _held(self) -> list[str]:
        with self.lock:
            return list(self.in_flight)

    def start(self) -> None:
        sync_and_spread(self.ctx)
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=TICK_SECONDS,
            id="dispatch",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self.housekeeping,
            "interval",
            seconds=housekeeping_check_seconds(self.ctx.settings),
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()
        self.keeper.start()

    def housekeeping(self) -> None:
        """Retention and log pruning, if this process wins this period's claim."""
        if self.stopping.is_set():
            return
        try:
            run_housekeeping_if_due(self.ctx)
        except AggregatorError as e:
            log.error("housekeeping failed: %s", e)

    def is_alive(self, within_seconds: float = 10 * TICK_SECONDS) -> bool:
        """Whether the dispatcher ticked recently (for /readyz)."""
        last = self.last_tick_at
        return last is not None and time.monotonic() - last < within_seconds

    def tick(self) -> None:
        """Claim what is due, up to the free slots. Runs every TICK_SECONDS, and again as
        soon as a fetch finishes while the last claim filled every slot (more may be
        waiting): the claim rate then follows the fetch rate, not the clock."""
        if self.stopping.is_set() or not self.tick_lock.acquire(blocking=False):
            return  # another tick is claiming right now
        try:
            self._tick()
        finally:
            self.tick_lock.release()

    def _tick(self) -> None:
        self.last_tick_at = time.monotonic()
        with self.lock:
            free = self.workers - len(self.in_flight)
        if free <= 0:
            return
        sources = {s.id: s for s in self.ctx.settings.sources if s.enabled}
        try:
            claimed = self.ctx.store.claim_due_sources(
                self.ctx.now(), self.ctx.owner, free, self.lease, host_limits(self.ctx.settings)
            )
        except AggregatorError as e:
            log.error("cannot claim due sources: %s", e)
            return
        self.saturated = len(claimed) >= free
        for state in claimed:
            source = sources.get(state.source_id)
            with self.lock:
                busy = state.source_id in self.in_flight
                if source is not None and not busy:
                    self.in_flight.add(state.source_id)
            if source is None or busy:
                # not in this process's config (yet), or already running here: give it
                # back at once rather than hold it until the lease runs out
                if not busy:
                    self._release(state.source_id)
                continue
            future = self.pool.submit(_safe_update, self.ctx, source, state)
            future.add_done_callback(self._done(state.source_id))

    def _release(self, source_id: str) -> None:
        try:
            self.ctx.store.release_lease(source_id, self.ctx.owner)
        except AggregatorError as e:
            log.error("%s: could not release the lease: %s", source_id, e)

    def _done(self, source_id: str) -> Callable[[Future[FetchOutcome | None]], None]:
        def callback(future: Future[FetchOutcome | None]) -> None:
            with self.lock:
                self.in_flight.discard(source_id)
            outcome = None if future.cancelled() else future.result()
            if outcome is not None and self.on_outcome is not None:
                self.on_outcome(outcome)
            if self.saturated:
                self.tick()

        return callback

    def apply_settings(self, settings: Settings) -> None:
        """A reloaded config (reload.py): the schedule in the database follows it first
        (raising ``AggregatorError`` if it cannot, so the old config stays), then the next
        tick claims with it. Fetches already running finish under the old one."""
        ctx = replace(self.ctx, settings=settings)
        sync_and_spread(ctx)
        ctx.fetcher.session.headers["User-Agent"] = settings.defaults.user_agent
        self.lease = lease_for(settings)
        self.ctx = ctx

    def stop(self, wait_seconds: float | None = None) -> None:
        """Stop claiming; let running fetches finish; release what was never started."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.keeper.stop()
        self.committer.close()
        with self.lock:
            leftover = list(self.in_flight)
        for source_id in leftover:
            self._release(source_id)


WAITING_THREADS_PER_SLOT = 2  # threads per fetch slot (see _fetch_claimed)
SHARD_MIN_SOURCES = 100  # below this a pass stays in one process: start-up would dominate


def _is_unfetched(state: SourceState) -> bool:
    return not (state.etag or state.last_modified or state.body_sha256)


class _SlotYieldingSink:
    """An ``update.FetchSink`` over the group committer: a thread waiting for its commit
    gives its CPU slot to another thread meanwhile (see ``_fetch_claimed``); a write not
    waited for (``batching.should_wait_for``) keeps it."""

    def __init__(self, committer: GroupCommitter, slots: threading.Semaphore) -> None:
        self.committer = committer
        self.slots = slots

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update: SourceUpdate,
    ) -> WriteCounts:
        if not should_wait_for(outcome):
            return self.committer.apply_fetch(outcome, owner, intents, update)  # at once
        future = self.committer.submit(outcome, owner, intents, update)
        self.slots.release()
        try:
            return future.result()
        finally:
            self.slots.acquire()


def _fetch_claimed(
    ctx: Context,
    cursor: Cursor,
    workers: int,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
    turns: HostTurns | None = None,
) -> list[FetchOutcome]:
    """Fetch the sources ``cursor`` hands out, ``workers`` at a time, writing through a
    group committer. ``on_outcome`` is called from the fetch threads, one at a time.
    With ``turns``, a source waits for its host's turn (politeness.py).

    There are WAITING_THREADS_PER_SLOT times as many threads as slots: a thread waiting
    for its write to commit gives its slot to one that fetches and parses meanwhile, so
    a process keeps working while the other process holds the writer lock, and the
    committer finds more fetches to put in one transaction. More threads than that, all
    runnable at once, only contended for the GIL: four per slot made a cold pass slower
    (9.5 s against 8.0 s for 1,000 feeds on 2 cores) and cost 15% more CPU.
    """
    by_id = {s.id: s for s in ctx.settings.sources}
    outcomes: list[FetchOutcome] = []
    lock = threading.Lock()
    slots = threading.Semaphore(workers)
    committer = GroupCommitter(ctx.store)
    worker_ctx = replace(ctx, sink=_SlotYieldingSink(committer, slots))
    polite = PoliteCursor(cursor, turns, slots) if turns is not None else None
    take = polite.take if polite is not None else cursor.take

    def work() -> None:
        while True:
            with slots:
                state = take()
                if state is None:
                    return
                try:
                    outcome = _safe_update(worker_ctx, by_id[state.source_id], state)
                finally:
                    if polite is not None:
                        polite.finish(state)
            if outcome is None:
                continue
            with lock:
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)

    threads = workers * WAITING_THREADS_PER_SLOT
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="fetch") as pool:
            for future in [pool.submit(work) for _ in range(threads)]:
                future.result()
    finally:
        committer.close()
    return outcomes


def _preload_for(ctx: Context, claimed: Sequence[SourceState]) -> None:
    """Import, before forking, what every shard of this pass would import for itself:
    sources never fetched that file items by a media name will slugify new names
    (pypinyin: 0.2 s to import and train, once instead of once per process)."""
    by_id = {s.id: s for s in ctx.settings.sources}
    if any(_is_unfetched(st) and by_id[st.source_id].category_from for st in claimed):
        from aggregator.slug import slugify

        slugify("上海")


PASS_GC_THRESHOLD = 10_000  # young-generation threshold during a pass (default 700)


@contextmanager
def _collector_for_a_pass() -> Iterator[None]:
    """The cyclic garbage collector tuned for one pass, and put back afterwards.

    What is loaded before the pass (modules, settings, pypinyin's dictionaries) lives as
    long as the process, yet every full collection walked it again, and a collection
    writes to each object it walks: in a forked shard that copies the page. Frozen, it
    is left alone. A pass allocates container objects by the hundred thousand (items,
    tuples, lists) that die young or live until their write; a young collection every
    10,000 of them instead of every 700 finds the same garbage. Both cut the
    instructions of parsing and deciding 200 feeds by 3.6% (callgrind; 4.4% with no
    collection at all). Nothing a pass creates is kept from the collector for long.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(PASS_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def run_pass(
    ctx: Context,
    source_ids: Sequence[str] | None = None,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
    processes: int = 1,
) -> tuple[list[FetchOutcome], list[str]]:
    """Fetch the given (default: every enabled) source once, now, in parallel.

    With ``processes`` > 1, at least SHARD_MIN_SOURCES sources and ``can_fork()``, the
    claimed sources are shared among that many forked processes, this one included
    (shards.py): parsing and deciding are CPU-bound Python, which threads in one process
    cannot spread over several cores, and even a pass of 304s spends most of its time in
    Python. Returns the outcomes and the ids skipped because another process
    holds their lease. Raises ShardError, once the others finished, if a child died.
    """
    ctx.store.sync_config(
        source_plans(ctx.settings), configured_categories(ctx.settings), ctx.now()
    )
    release_dead_leases(ctx)
    wanted: Iterable[Source] = (
        [ctx.settings.source(sid) for sid in source_ids]
        if source_ids
        else [s for s in ctx.settings.sources if s.enabled]
    )
    ids = [s.id for s in wanted]
    lease = lease_for(ctx.settings)
    claimed = ctx.store.claim_sources(ids, ctx.now(), ctx.owner, lease)
    skipped = sorted(set(ids) - {state.source_id for state in claimed})
    held = [state.source_id for state in claimed]  # finished ones are released: no-ops
    workers = ctx.settings.defaults.workers
    # per_host holds for a pass as for the dispatcher's claims (made before any fork)
    turns = HostTurns.for_pass(claimed, host_limits(ctx.settings))
    shard = processes > 1 and len(claimed) >= SHARD_MIN_SOURCES
    if shard and not can_fork():
        log.info("pass of %d sources in one process: cannot fork here", len(claimed))
    elif shard:
        log.info("pass of %d sources in %d processes", len(claimed), processes)
        _preload_for(ctx, claimed)
        per_process = max(4, workers // processes)
        # the keeper thread starts once the children are forked (run_shards forks first)
        keeper = LeaseKeeper(ctx, lambda: lease, lambda: held)
        with _collector_for_a_pass():
            outcomes = run_shards(
                ctx,
                claimed,
                processes,
                per_process,
                functools.partial(_fetch_claimed, turns=turns),
                on_outcome,
                keeper,
                ShardContexts(open_context, close_context),
            )
        return outcomes, skipped
    keeper = LeaseKeeper(ctx, lambda: lease, lambda: held).start()
    try:
        with _collector_for_a_pass():
            outcomes = _fetch_claimed(ctx, LocalCursor(claimed), workers, on_outcome, turns)
            return outcomes, skipped
    finally:
        keeper.stop()
