"""Following the config file while the service runs.

Every process (``run``, ``worker``, each ``serve`` process) watches its config file: a
thread checks it every few seconds (and at once on SIGHUP or ``POST /api/reload``). When
its bytes change, the file is read and validated in full:

* invalid: nothing changes; the process keeps its last good config, logs the first
  problem on one line, and reports it in ``/healthz`` and the reload answer until a
  valid file arrives;
* valid: each subscriber applies it in turn (a fetching process first makes the schedule
  in the database follow it: new sources appear, removed ones stop, a shorter interval
  applies at once), then the new config becomes current. A subscriber that fails (the
  database is down) leaves the file to be tried again at the next check.

Keys read only at start (``database``, ``server``, ``defaults.workers``, ``auto_migrate``)
keep their old value until a restart; the log says so when they change.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config.settings import Settings, load_settings
from aggregator.errors import AggregatorError, ConfigError

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
RESTART_ONLY = ("database", "server", "auto_migrate")


class ReloadResult(enum.Enum):
    UNCHANGED = "unchanged"
    APPLIED = "applied"
    REJECTED = "rejected"  # invalid, or could not be applied: the last good config stays


@dataclass(frozen=True, slots=True)
class ConfigStatus:
    """What ``/healthz`` and ``POST /api/reload`` report about the config."""

    path: str
    loaded_at: datetime
    generation: int  # 1 at start, +1 per applied change
    error: str | None = None  # why the newest version of the file is not in use
    problems: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "loaded_at": self.loaded_at.isoformat(),
            "generation": self.generation,
            "error": self.error,
            "problems": list(self.problems),
        }


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """Keys whose change needs a restart (pure)."""
    changed = [key for key in RESTART_ONLY if getattr(old, key) != getattr(new, key)]
    if old.defaults.workers != new.defaults.workers:
        changed.append("defaults.workers")
    return changed


def keep_restart_only(old: Settings, new: Settings) -> Settings:
    """``new`` with the keys read only at start put back to their running values."""
    kept = new.model_copy(update={key: getattr(old, key) for key in RESTART_ONLY})
    defaults = kept.defaults.model_copy(update={"workers": old.defaults.workers})
    return kept.model_copy(update={"defaults": defaults})


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # unreadable now: load_settings will say why


class ConfigWatcher:
    """Holds the current config of one process and swaps it when the file changes."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self._settings = settings
        self._digest = _digest(path)
        self._subscribers: list[Callable[[Settings], None]] = []
        self._lock = threading.Lock()
        self._status = ConfigStatus(str(path), datetime.now(UTC), 1)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    def status(self) -> ConfigStatus:
        return self._status

    def subscribe(self, apply: Callable[[Settings], None]) -> None:
        """``apply(new)`` runs on every valid change, in subscription order; it may raise
        ``AggregatorError`` to refuse it (the file is tried again at the next check)."""
        self._subscribers.append(apply)

    def check(self, force: bool = False) -> ReloadResult:
        with self._lock:
            digest = _digest(self.path)
            if digest is not None and digest == self._digest and not force:
                return ReloadResult.UNCHANGED
            try:
                loaded = load_settings(self.path)
            except ConfigError as e:
                return self._reject(digest, "invalid config", tuple(e.problems))
            postponed = restart_only_changes(self._settings, loaded)
            new = keep_restart_only(self._settings, loaded)
            try:
                for apply in self._subscribers:
                    apply(new)
            except AggregatorError as e:
                return self._reject(None, f"could not apply the config: {e}", ())
            self._settings = new
            self._digest = digest
            self._status = ConfigStatus(
                str(self.path), datetime.now(UTC), self._status.generation + 1
            )
            log.info(
                "config reloaded from %s: %d sources, %d categories%s",
                self.path,
                len(new.sources),
                len(new.categories),
                f"; {', '.join(postponed)} changed and take effect at the next restart"
                if postponed
                else "",
            )
            return ReloadResult.APPLIED

    def _reject(self, digest: str | None, error: str, problems: tuple[str, ...]) -> ReloadResult:
        first = f": {problems[0]}" if problems else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        if (error, problems) != (self._status.error, self._status.problems):
            log.error("%s, keeping the last good one%s%s", error, first, more)
        self._status = ConfigStatus(
            self._status.path, self._status.loaded_at, self._status.generation, error, problems
        )
        if digest is not None:
            self._digest = digest  # an invalid file is reported once, not every check
        return ReloadResult.REJECTED

    # ------------------------------------------------------------------ background

    def start(self, every_seconds: float = CHECK_SECONDS) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(every_seconds)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    self.check()
                except Exception:  # a watcher must outlive any surprise
                    log.exception("config check failed")

        self._thread = threading.Thread(target=loop, name="config-watch", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Check now (SIGHUP)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
