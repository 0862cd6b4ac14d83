"""The multiprocess metrics directory; no business logic. Kept apart from metrics.py
because prometheus-client chooses where values live when it is first imported: the
parent that sets the directory must not have imported it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_dir() -> Iterator[str | None]:
    """For a parent about to start server processes: a fresh directory for their metric
    files in $PROMETHEUS_MULTIPROC_DIR, removed when the block ends. An operator's own
    setting is kept as it is (and not removed); None means it was theirs."""
    if os.environ.get(MULTIPROC_ENV):
        yield None
        return
    path = tempfile.mkdtemp(prefix="aggregator-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
