"""``aggregator serve`` alone follows its config (issue 13): it logged a reload and kept
serving the old category titles, since only ``run`` and ``worker`` made the database
follow the config. Over a real socket, with each server ``serve`` can run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from aggregator.store.sql import SqlStore
from tests.serve.servers import aggregator_serve, raw_get
from tests.serve.stock import stock, stock_config, stock_settings

TOKEN = "a-long-enough-admin-token"


def post(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 0\r\n\r\n"
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def body(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_serve_alone_applies_a_retitled_category(tmp_path: Path, server: str) -> None:
    database = tmp_path / "serve.db"
    extra = f"database: sqlite:///{database}\nserver: {{admin_token: {TOKEN}}}\n"
    config = tmp_path / "config.yaml"
    config.write_text(stock_config({"alpha": "旧标题"}, extra), "utf-8")
    store = SqlStore(f"sqlite:///{database}")
    store.upgrade()
    stock(store, stock_settings({"alpha": "旧标题"}), {"alpha": 2})
    store.close()
    with aggregator_serve(config, server, tmp_path / "serve.log") as port:
        before = raw_get(port, b"/feeds/alpha.json")
        assert json.loads(body(before))["title"] == "旧标题"
        config.write_text(stock_config({"alpha": "新标题"}, extra), "utf-8")
        reloaded = post(port, b"/api/reload")
        assert reloaded.startswith(b"HTTP/1.1 200"), reloaded
        assert json.loads(body(reloaded))["result"] == "applied"
        after = raw_get(port, b"/feeds/alpha.json")
        page = raw_get(port, b"/category/alpha.html")
        categories = raw_get(port, b"/api/categories")
    assert json.loads(body(after))["title"] == "新标题"
    assert "新标题" in body(page).decode()
    assert [c["title"] for c in json.loads(body(categories))] == ["新标题"]
