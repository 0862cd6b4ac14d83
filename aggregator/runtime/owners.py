"""Lease owner ids: who holds a source's lease, and whether that process still lives.

Holds no business logic: names for processes (machine, pid, a random part) and the pure
rule that judges an owner dead only when it ran on this machine and its pid is gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable


def this_machine() -> str:
    """Where a pid means something: the host name and, on Linux, the PID namespace
    (containers sharing a host name can still have separate pid spaces)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}"


def new_owner_id() -> str:
    """Who holds a lease: machine, pid and a random part (pids are reused)."""
    return f"{this_machine()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_local_owners(
    owners: Iterable[str], machine: str, is_alive: Callable[[int], bool]
) -> list[str]:
    """The lease owners among ``owners`` that ran on ``machine`` and whose process is gone.

    Pure but for ``is_alive``. Owners from other machines, or not in ``new_owner_id``'s
    shape, are never judged: only their lease's expiry frees their sources. A reused pid
    reads as alive, which errs on the safe side (the lease then simply expires).
    """
    dead: list[str] = []
    for owner in owners:
        parts = owner.rsplit(":", 2)
        is_local = len(parts) == 3 and parts[0] == machine and parts[1].isdigit()
        if is_local and not is_alive(int(parts[1])):
            dead.append(owner)
    return dead


def is_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
