"""The app over a real socket, for the serving tests: uvicorn in a thread of the test
process, or ``aggregator serve`` (granian or uvicorn) as a child process; and raw HTTP/1.1
requests, for bytes a client library would not send."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def uvicorn_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 with uvicorn in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def aggregator_serve(config: Path, server: str, log: Path) -> Iterator[int]:
    """``aggregator --config CONFIG serve --server SERVER`` on a free port; yields the port
    once ``/healthz`` answers, and stops the process with SIGTERM."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "aggregator", "--config", str(config), "serve"),
                *("--port", str(port), "--server", server),
            ],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not raw_get(port, b"/healthz").startswith(b"HTTP/1.1 200"):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("serve did not answer: " + log.read_text())
                time.sleep(0.2)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def raw_get(port: int, target: bytes, timeout: float = 10) -> bytes:
    """The whole answer to ``GET target`` sent as these very bytes (b"" if nobody
    listens)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(
                b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            return answer
    except OSError:
        return b""
