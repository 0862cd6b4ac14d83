"""A PostgreSQL server of a test's own, for tests that stop the database: ``initdb`` and
``pg_ctl`` on a free port in a temporary folder, never the shared test server. initdb
refuses to run as root, so as root the cluster runs as the ``postgres`` system user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.serve.servers import free_port


def find_bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Cluster:
    """One running (or stopped) PostgreSQL cluster; ``url`` for its ``postgres`` database."""

    def __init__(self, bin_dir: Path, folder: Path, user: int | None) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.user = user
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            user=self.user,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=40"
        )
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A new cluster, started; stopped and removed afterwards. Raises LookupError when
    the server binaries (or, as root, the postgres user) are not there."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise LookupError("no initdb (PostgreSQL's server binaries) on this machine")
    user = None
    folder = Path(tempfile.mkdtemp(prefix="agg-pg-"))
    try:
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise LookupError("initdb refuses root and there is no postgres user") from None
            user = account.pw_uid
            os.chown(folder, account.pw_uid, account.pw_gid)
        cluster = Cluster(bin_dir, folder, user)
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(RuntimeError):  # stopped already
                cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
