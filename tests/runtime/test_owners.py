"""Lease owner ids (runtime/owners.py): who holds a lease, and which owners are dead."""

from __future__ import annotations

import os

import pytest

from aggregator.runtime.owners import dead_local_owners, is_pid_alive, new_owner_id, this_machine


@pytest.mark.parametrize(
    ("owner", "dead"),
    [
        pytest.param("box/7:4242:ab12cd34", True, id="here-and-gone"),
        pytest.param("box/7:1000:ab12cd34", False, id="here-and-alive"),
        pytest.param("other/7:4242:ab12cd34", False, id="another-host"),
        pytest.param("box/8:4242:ab12cd34", False, id="another-pid-namespace"),
        pytest.param("me", False, id="not-an-owner-id"),
        pytest.param("box/7:pid:ab12cd34", False, id="pid-not-a-number"),
    ],
)
def test_only_dead_processes_of_this_machine_lose_their_leases(owner: str, dead: bool) -> None:
    found = dead_local_owners([owner], "box/7", lambda pid: pid != 4242)
    assert found == ([owner] if dead else [])


def test_owner_ids_name_this_machine_and_process() -> None:
    machine, pid, _ = new_owner_id().rsplit(":", 2)
    assert (machine, int(pid)) == (this_machine(), os.getpid())
    assert dead_local_owners([new_owner_id()], this_machine(), is_pid_alive) == []
