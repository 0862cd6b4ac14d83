"""memory.py on this machine's glibc: trimming gives freed heap memory back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aggregator.runtime import memory

pytestmark = pytest.mark.skipif(memory._LIBC is None, reason="not glibc: nothing to tune")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_returns_freed_heap_memory_to_the_kernel() -> None:
    """Freed 1 KiB blocks below a live one stay in the arena (free() can only shrink a
    heap from its top); trim hands them back."""
    kept: list[bytes] = []

    def churn() -> None:  # in a thread of its own: a heap arena, as a fetch thread has
        blocks = [bytes(1024) + bytes([i % 256]) for i in range(150_000)]
        kept.append(blocks[-1])  # pins the top of the heap
        del blocks

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = _rss_kib()
    assert memory.trim()
    after = _rss_kib()
    assert before - after > 64 * 1024, (before, after)
    assert kept


def test_limit_arenas_is_accepted() -> None:
    assert memory.limit_arenas(memory.MAX_ARENAS)


def test_trimmer_stops() -> None:
    trimmer = memory.Trimmer(interval_seconds=0.01).start()
    trimmer.stop()
    assert not trimmer._thread.is_alive()
