"""Serving while the database is away: what a request gets, and the two log lines of an
outage.

With PostgreSQL stopped for 20 s, every page, feed and API request answered 500 and
logged a full traceback (63 of them; issue 13). Now, when a request's read fails
(``StoreError``):

    a feed or page rendered before      the last rendered document, as it was, marked
                                         ``Cache-Status: aggregator; hit;
                                         detail=stale-if-error`` (httpcache.py)
    anything else                        503 with Retry-After, one line, no traceback
    /readyz                              503 "not ready" with the database's error
    /healthz                             200: the process is alive

and the log says once when the database stopped answering and once when it answers
again, with how long it was away and how many requests were answered meanwhile. On
SQLite, the fast path (fastpath.py) answers repeated feed requests from memory, without
a query, for as long as the database's files are unchanged, so an outage that leaves
them alone is not even seen there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from aggregator.errors import StoreError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10


class DatabaseWatch:
    """Whether the database answered this process's last request, for the outage's two
    log lines. ``failed`` and ``answered`` are called by the request handlers (from
    Starlette's thread pool); ``answered`` takes no lock while the database is up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._stale = 0
        self._refused = 0

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: StoreError, *, stale: bool) -> None:
        """A read failed; the request gets a stale document (``stale``) or a 503."""
        with self._lock:
            if self._down_since is None:
                self._down_since = self._clock()
                self._stale = self._refused = 0
                log.error(
                    "database unavailable (%s): answering with the last rendered feeds and "
                    "pages where there are some, 503 otherwise, until it answers again",
                    error,
                )
            if stale:
                self._stale += 1
            else:
                self._refused += 1

    def answered(self) -> None:
        """A request read from the database."""
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds = self._clock() - self._down_since
            self._down_since = None
            log.warning(
                "database answers again after %.0f s; meanwhile %d request(s) got a stale "
                "document and %d a 503",
                seconds,
                self._stale,
                self._refused,
            )


def unavailable(request: Request) -> Response:
    """The 503 for a request the database could not serve: JSON for the API, text for
    the rest. The database's own error stays in the log (it may name hosts)."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"error": "the database is not answering; try again shortly"},
            status_code=503,
            headers=headers,
            media_type="application/json; charset=utf-8",
        )
    return PlainTextResponse(
        "503 Service Unavailable: the database is not answering; try again shortly\n",
        status_code=503,
        headers=headers,
    )
