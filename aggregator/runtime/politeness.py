"""Per-host politeness within one pass (``aggregator fetch``): the ``per_host`` limits
the dispatcher applies when it claims (store.claim_due_sources), applied to the sources
a pass claimed all at once.

    a fetch thread asks the cursor for a source:
        a source taken earlier whose host has a turn free, else
        the next one from the pass's cursor if its host has a turn free
            (if not, it waits in this process's queue for its host)
        when every source left waits for its host: give the CPU slot away, wait for a
            turn to end (or a minute's count to fall), try again
    the thread fetches, records, and ends its host's turn

A host has a turn free while fewer than ``max_concurrent`` of its fetches run and fewer
than ``max_per_minute`` started in the last minute. The counts live in shared memory
made before a sharded pass forks, so its processes obey the limits together. They
count this pass's fetches; other processes' fetches count only in the dispatcher's
claims (which see this pass's leases).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from aggregator.model import SourceState
from aggregator.runtime.shards import Cursor
from aggregator.store import HostLimits
from aggregator.store.dbapi import host_of

MINUTE = 60.0
WAIT_SECONDS = 0.5  # longest wait before looking again (a minute's count falls silently)


def _host(state: SourceState) -> str:
    return host_of(state.effective_url or state.url)


class HostTurns:
    """The hosts of one pass's sources and their turns, in shared memory (see the module
    docstring). Build it before forking; ``None`` from ``for_pass`` when there are no
    limits."""

    def __init__(
        self,
        claimed: Sequence[SourceState],
        limits: HostLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        hosts = sorted({_host(state) for state in claimed} - {""})  # file: has no host
        self._index = {host: number for number, host in enumerate(hosts)}
        self._limits = limits
        self._clock = clock
        # shared with the processes a sharded pass forks (on Linux); elsewhere a pass
        # runs in one process and these are plain memory in effect
        forks = "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if forks else None)
        self._changed = context.Condition()  # guards the arrays; notified as a turn ends
        self._running = context.RawArray("i", max(len(hosts), 1))
        # per host, the start times of its last max_per_minute fetches (a ring)
        self._window = limits.max_per_minute or 0
        self._starts = context.RawArray("d", max(len(hosts) * self._window, 1))
        for slot in range(len(self._starts)):
            self._starts[slot] = -float("inf")
        self._next_slot = context.RawArray("i", max(len(hosts), 1))

    @classmethod
    def for_pass(cls, claimed: Sequence[SourceState], limits: HostLimits) -> HostTurns | None:
        return cls(claimed, limits) if limits.active else None

    def host_of(self, state: SourceState) -> int | None:
        """The host's number, or None for a source with no host to spare (file:)."""
        return self._index.get(_host(state))

    def try_start(self, host: int) -> bool:
        """Take a turn of ``host`` if one is free."""
        with self._changed:
            limit = self._limits.max_concurrent
            if limit is not None and self._running[host] >= limit:
                return False
            now = self._clock()
            if self._window:
                slot = host * self._window + self._next_slot[host]
                if now - self._starts[slot] < MINUTE:  # the oldest of the last N is recent
                    return False
                self._starts[slot] = now
                self._next_slot[host] = (self._next_slot[host] + 1) % self._window
            self._running[host] += 1
            return True

    def finish(self, host: int | None) -> None:
        """End a turn that ``try_start`` gave."""
        if host is None:
            return
        with self._changed:
            self._running[host] -= 1
            self._changed.notify_all()

    def wait(self) -> None:
        """Until a turn ends (in any process), or a while at most."""
        with self._changed:
            self._changed.wait(WAIT_SECONDS)


class PoliteCursor:
    """A pass's cursor that hands out a source only when its host has a turn free; a
    source whose host is busy waits in this process while others go ahead. Each source
    ``take`` gives must be ``finish``ed."""

    def __init__(self, inner: Cursor, turns: HostTurns, slots: threading.Semaphore) -> None:
        self._inner = inner
        self._turns = turns
        self._slots = slots  # held by the calling thread; given away while it waits
        self._waiting: dict[int, deque[SourceState]] = {}
        self._lock = threading.Lock()

    def take(self) -> SourceState | None:
        while True:
            with self._lock:
                for host, queue in self._waiting.items():
                    if self._turns.try_start(host):
                        waited = queue.popleft()
                        if not queue:
                            del self._waiting[host]
                        return waited
            state = self._inner.take()
            if state is not None:
                number = self._turns.host_of(state)
                if number is None or self._turns.try_start(number):
                    return state
                with self._lock:
                    self._waiting.setdefault(number, deque()).append(state)
                continue
            with self._lock:
                if not self._waiting:
                    return None
            # every source left here waits for its host: let another thread of this
            # process use the CPU slot meanwhile (as one waiting for its commit does)
            self._slots.release()
            try:
                self._turns.wait()
            finally:
                self._slots.acquire()

    def finish(self, state: SourceState) -> None:
        self._turns.finish(self._turns.host_of(state))
