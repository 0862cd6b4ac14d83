"""Giving freed memory back to the operating system on glibc. Holds no business logic.

Why: glibc's malloc keeps what a thread frees in that thread's arena (up to eight arenas
per core) for reuse, and returns it to the kernel only from the top of an arena. A
service whose worker threads parse feed bodies, libxml2 trees and SQLite pages all day
holds on to the high-water mark of every arena: in a soak run (bench/soak.py) the
service's resident set grew by 20 MB a minute, and ``malloc_trim(0)`` handed 140 MB of
free memory back at once. So long-running processes (``run``, ``worker``, ``serve``)
cap the number of arenas at start and trim every minute.

Both calls are glibc's; anywhere else (musl, macOS) they are skipped and nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
import threading

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter, <malloc.h>
MAX_ARENAS = 2
TRIM_INTERVAL_SECONDS = 60.0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(count: int = MAX_ARENAS) -> bool:
    """Cap malloc arenas for threads created from now on; True if glibc took it."""
    return _LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, count) == 1


def trim() -> bool:
    """Return free heap memory of every arena to the kernel; True if glibc did."""
    return _LIBC is not None and _LIBC.malloc_trim(0) == 1


class Trimmer:
    """A daemon thread that calls ``trim`` every ``interval_seconds`` until stopped."""

    def __init__(self, interval_seconds: float = TRIM_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-trim", daemon=True)

    def start(self) -> Trimmer:
        if _LIBC is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            trim()  # ctypes releases the GIL for the call
