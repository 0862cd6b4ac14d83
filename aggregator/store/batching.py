"""Group commit: many workers' fetch writes applied by one writer thread, several per
transaction, each source inside its own savepoint.

Why: a write per source per transaction makes every worker queue on the database's write
lock (SQLite has one; PostgreSQL serializes on the sequence counter row) and pay a commit
each. Handing the finished write to one thread that commits up to ``max_batch`` at a time
removes the queueing and most commits, while each source still commits all or nothing.

``apply_fetch`` blocks the calling worker until its write is committed (or failed) and
returns the same counts, so the orchestrator does not know the difference. Except for a
fetch that found the feed unchanged (a 304, the same bytes again: ``should_wait_for``):
it writes no items, so its counts are zero whatever happens, and the worker goes on to
its next source at once instead of waiting a commit cycle for a log row and new
validators. The lease is still released only by that commit, so nobody fetches the
source again before it lands; ``close`` waits for it; a failure is logged (the next
fetch of the source simply repeats the conditional GET).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from aggregator.errors import StoreError
from aggregator.model import FetchOutcome, ItemIntent, OutcomeKind
from aggregator.store import FetchWrite, SourceUpdate, Store, WriteCounts

_STOP = object()
_NOTHING_WRITTEN = WriteCounts(new=0, updated=0, memberships=0)
_UNCHANGED = frozenset({OutcomeKind.NOT_MODIFIED, OutcomeKind.UNCHANGED_BODY})
log = logging.getLogger(__name__)


def should_wait_for(outcome: FetchOutcome) -> bool:
    """Whether the worker that recorded ``outcome`` waits for its commit: not when the
    fetch found the feed unchanged (see the module docstring)."""
    return outcome.kind not in _UNCHANGED


def _log_failure(source_id: str) -> Callable[[Future[WriteCounts]], None]:
    def check(future: Future[WriteCounts]) -> None:
        error = future.exception()
        if error is not None:
            log.error("%s: could not record the fetch: %s", source_id, error)

    return check


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        max_batch: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.on_batch = on_batch  # told each transaction's size (the batch-size metric)
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update: SourceUpdate,
    ) -> WriteCounts:
        """Queue the write and return its counts once committed (raising its StoreError
        if it failed); a fetch that found the feed unchanged returns at once."""
        if not should_wait_for(outcome):
            future: Future[WriteCounts] = Future()
            future.add_done_callback(_log_failure(outcome.source_id))
            self._queue.put(((outcome, owner, intents, update), future))
            return _NOTHING_WRITTEN
        return self.submit(outcome, owner, intents, update).result()

    def submit(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update: SourceUpdate,
    ) -> Future[WriteCounts]:
        """Queue a fetch's write; the future holds its counts once committed."""
        future: Future[WriteCounts] = Future()
        self._queue.put(((outcome, owner, intents, update), future))
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            # The batch is gathered once this process's turn to write has come: what
            # arrived while another process held it goes in too (fewer, larger commits).
            with self.store.write_turn():
                batch = [first]
                stopping = False
                while len(batch) < self.max_batch:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stopping = True
                        break
                    batch.append(job)
                self._commit(batch)  # type: ignore[arg-type]
            if self.on_batch is not None:
                self.on_batch(len(batch))
            if stopping:
                return

    def _commit(self, batch: list[tuple[FetchWrite, Future[WriteCounts]]]) -> None:
        try:
            results = self.store.apply_fetches([job for job, _ in batch])
        except StoreError as e:  # the transaction itself failed: every write failed
            for _, future in batch:
                future.set_exception(e)
            return
        except Exception as e:  # never leave a worker waiting forever
            for _, future in batch:
                future.set_exception(StoreError(f"group commit failed: {e!r}"))
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, StoreError):
                future.set_exception(result)
            else:
                future.set_result(result)
