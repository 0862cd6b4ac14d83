"""A query string of raw UTF-8 (``?q=芯片`` sent unencoded, issue 13), through both servers
``aggregator serve`` can run, over a real socket. granian passes the bytes on and the app
reads them as UTF-8; uvicorn's parsers (httptools and h11 alike) refuse the request line
with ``400 Bad Request`` before any app runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aggregator.serve.app import create_app
from aggregator.serve.fastpath import ascii_query
from aggregator.store.sql import SqlStore
from tests.serve.servers import aggregator_serve, raw_get
from tests.serve.stock import stock, stock_config, stock_settings

TITLES = {"chips": "芯片"}
CHIPS = "芯片".encode()


def body_of(item: int) -> str:
    return "<p>关于芯片的新闻</p>" if item % 2 else "<p>别的新闻</p>"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"q=abc&limit=5", b"q=abc&limit=5"),
        (b"q=%E8%8A%AF", b"q=%E8%8A%AF"),  # encoded already: left alone
        (b"q=" + CHIPS, b"q=%E8%8A%AF%E7%89%87"),
        (b"q=\xff&c=a,b", b"q=%FF&c=a,b"),
        (b"", b""),
    ],
)
def test_ascii_query(raw: bytes, expected: bytes) -> None:
    assert ascii_query({"query_string": raw})["query_string"] == expected


def test_raw_utf8_filters_as_the_encoded_form_does(store: SqlStore) -> None:
    settings = stock_settings(TITLES)
    stock(store, settings, {"chips": 6}, body=body_of)
    client = TestClient(create_app(settings, store))
    encoded = client.get("/feeds/chips.json", params={"q": "芯片"}).json()["items"]
    assert len(encoded) == 3
    # the test client encodes what it is given, so the raw bytes go in through the scope
    app = create_app(settings, store)
    raw = TestClient(_with_query(app, b"q=" + CHIPS)).get("/feeds/chips.json").json()["items"]
    assert [i["id"] for i in raw] == [i["id"] for i in encoded]


def _with_query(app: object, query: bytes) -> object:
    """An ASGI app that hands ``app`` every request with this query string, as a server
    would that passes a raw request line on."""

    async def replaced(scope: dict[str, object], receive: object, send: object) -> None:
        await app({**scope, "query_string": query}, receive, send)  # type: ignore[operator]

    return replaced


@pytest.mark.slow
@pytest.mark.parametrize(("server", "status"), [("granian", b"200"), ("uvicorn", b"400")])
def test_each_server_with_a_raw_utf8_query(tmp_path: Path, server: str, status: bytes) -> None:
    database = tmp_path / "raw.db"
    config = tmp_path / "config.yaml"
    config.write_text(stock_config(TITLES, f"database: sqlite:///{database}\n"), "utf-8")
    store = SqlStore(f"sqlite:///{database}")
    store.upgrade()
    stock(store, stock_settings(TITLES), {"chips": 6}, body=body_of)
    store.close()
    with aggregator_serve(config, server, tmp_path / "serve.log") as port:
        answer = raw_get(port, b"/feeds/chips.json?q=" + CHIPS)
        encoded = raw_get(port, b"/feeds/chips.json?q=%E8%8A%AF%E7%89%87")
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert encoded.startswith(b"HTTP/1.1 200"), encoded[:200]
    if status == b"200":
        items = json.loads(answer.partition(b"\r\n\r\n")[2])["items"]
        assert len(items) == 3
        assert items == json.loads(encoded.partition(b"\r\n\r\n")[2])["items"]
