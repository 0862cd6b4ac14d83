"""Serve a directory with a private nginx child process (127.0.0.1, free port).

    with NginxServer(Path("bench/out/corpus")) as server:
        print(server.base_url)

The generated nginx.conf, pid file, logs and temp paths live in a temp dir that
is removed on exit; nginx is stopped (TERM, then KILL) even when the body raises.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

CONF_TEMPLATE = """\
daemon off;
master_process on;
worker_processes 2;
{user_line}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 16384;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    types {{
        application/xml xml;
        application/json json;
    }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/xml;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    etag on;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name localhost;
        root {root};
        location / {{
            try_files $uri =404;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nginx_version() -> str:
    proc = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10, check=False)
    return (proc.stderr or proc.stdout).strip().removeprefix("nginx version: ")


class NginxServer:
    """A foreground nginx (master + 2 workers) serving `root` on a free port."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.port = port or free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_conf(self) -> Path:
        # As root the workers would otherwise drop to "nobody"; keep the invoking user.
        user_line = "user root;" if os.geteuid() == 0 else ""
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            CONF_TEMPLATE.format(tmp=self.tmp, port=self.port, root=self.root, user_line=user_line),
            encoding="utf-8",
        )
        return conf

    def start(self) -> None:
        conf = self._write_conf()
        cmd = [NGINX, "-p", str(self.tmp), "-c", str(conf), "-e", str(self.tmp / "error.log")]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {err}{self.log()}")
            try:
                with urllib.request.urlopen(self.base_url + "/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # 403/404 for "/" still means it is listening
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer within {START_TIMEOUT_S}s: {self.log()}")

    def log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if proc is not None and proc.stderr:
            proc.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> NginxServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
