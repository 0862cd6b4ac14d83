"""Run one child process and measure its wall time and peak RSS.

Peak RSS is ru_maxrss (KiB) of the measured command. The command is started
through GNU time (`/usr/bin/time -f %M`), a tiny C process: Linux carries the
parent's memory high-water mark across fork/vfork + exec into the child's
ru_maxrss, so spawning straight from this (large) Python process would report at
least our own peak for every child. Without /usr/bin/time the wait4 rusage of the
direct child is used (an upper bound). The timeout is enforced with a pidfd and
kills the child's whole process group, so no polling loop adds latency.

For long-running children (servers, workers), ``read_proc`` samples a live process's
resident set, the kernel's peak of it (VmHWM) and its CPU time from /proc.
"""

from __future__ import annotations

import os
import platform
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


@dataclass(frozen=True)
class ChildResult:
    cmd: list[str]
    wall_s: float
    peak_rss_kib: int
    returncode: int
    timed_out: bool
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kib / 1024

    def describe(self) -> str:
        why = "timed out" if self.timed_out else f"exit {self.returncode}"
        return (
            f"{' '.join(self.cmd)}: {why}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def _wait_with_timeout(pid: int, timeout_s: float) -> tuple[int, int, bool]:
    """Wait for pid; kill its process group on timeout. Return (status, maxrss, timed_out)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        timed_out = not poller.poll(int(timeout_s * 1000))
        if timed_out:
            os.killpg(pid, signal.SIGKILL)  # the child leads its own session
    finally:
        os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    return status, usage.ru_maxrss, timed_out


def _gnu_time_maxrss(path: Path) -> int | None:
    """Last line of `/usr/bin/time -f %M -o path` (earlier lines may be signal notes)."""
    lines = path.read_text(errors="replace").split() if path.exists() else []
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def _tail(path: Path, limit: int = 20_000) -> str:
    data = path.read_bytes()
    return data[-limit:].decode("utf-8", errors="replace")


SETTLE_SECONDS = 2.0


def run_measured(
    cmd: Sequence[str],
    log_prefix: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ChildResult:
    """Run cmd to completion (stdout/stderr to log files) and measure it.

    Untimed, first: ``sync`` and a short pause, so no run pays for writing back what the
    one before it left dirty (newsboat's second reload leaves a few hundred MB; the next
    run's fsyncs then queued behind them: a cold pass measured 8.8 s instead of 6.6 s).
    """
    os.sync()
    time.sleep(SETTLE_SECONDS)
    out_path = log_prefix.with_suffix(".stdout")
    err_path = log_prefix.with_suffix(".stderr")
    rss_path = log_prefix.with_suffix(".maxrss")
    rss_path.unlink(missing_ok=True)
    argv = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd] if GNU_TIME else list(cmd)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        status, maxrss, timed_out = _wait_with_timeout(proc.pid, timeout_s)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    return ChildResult(
        cmd=list(cmd),
        wall_s=wall,
        peak_rss_kib=_gnu_time_maxrss(rss_path) or maxrss,
        returncode=proc.returncode,
        timed_out=timed_out,
        stdout=_tail(out_path),
        stderr=_tail(err_path),
    )


@dataclass(frozen=True)
class ProcSample:
    rss_mb: float  # VmRSS
    hwm_mb: float  # VmHWM: the kernel's peak resident set of the process so far
    cpu_seconds: float  # utime + stime


def read_proc(pid: int) -> ProcSample | None:
    """One reading of /proc/PID (Linux), or None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    kib = {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM") if k in fields}
    ticks = stat.rsplit(")", 1)[1].split()  # the fields after the command name
    return ProcSample(
        rss_mb=kib.get("VmRSS", 0) / 1024,
        hwm_mb=kib.get("VmHWM", 0) / 1024,
        cpu_seconds=(int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK"),
    )


def machine_facts() -> dict[str, str]:
    """Cores, CPU model, memory, kernel and Python of this machine, for reports."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
