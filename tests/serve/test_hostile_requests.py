"""Hostile requests (issue 13): whatever a client puts in a path segment, a query
parameter or the Authorization header, every endpoint answers with a 2xx, 3xx or 4xx,
never a 5xx; on real SQLite and real PostgreSQL, whose limits differ (SQLite's driver
raised OverflowError past 2**63 - 1, PostgreSQL said "bigint out of range")."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from aggregator.config.reload import ConfigWatcher
from aggregator.serve.app import ADMIN_ENDPOINTS, ENDPOINTS, create_app
from aggregator.store.sql import SqlStore
from tests.serve.stock import stock, stock_settings

TOKEN = "a-long-enough-admin-token"
TITLES = {"alpha": "甲", "beta": "乙"}
FEED_PARAMS = ("limit", "since", "q", "exclude", "format", "c")
# Every endpoint: its method, the names of its path parameters and of its query parameters.
SURFACE: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "/feeds/{name}.{ext}": ("GET", ("name", "ext"), FEED_PARAMS),
    "/feeds/{name}": ("GET", ("name",), FEED_PARAMS),
    "/feeds/ticker/{code}.{ext}": ("GET", ("code", "ext"), FEED_PARAMS),
    "/ticker/{code}.html": ("GET", ("code",), ()),
    "/": ("GET", (), ()),
    "/category/{slug}.html": ("GET", ("slug",), ("page",)),
    "/item/{item_id}.html": ("GET", ("item_id",), ()),
    "/api/items": ("GET", (), ("category", "ticker", "since", "cursor", "limit")),
    "/api/categories": ("GET", (), ()),
    "/api/sources": ("GET", (), ()),
    "/openapi.json": ("GET", (), ()),
    "/healthz": ("GET", (), ()),
    "/readyz": ("GET", (), ()),
    "/metrics": ("GET", (), ()),
    "/status": ("GET", (), ()),
    "/status/{source_id}": ("GET", ("source_id",), ()),
    "/feeds.opml": ("GET", (), ()),
    "/api/sources/{source_id}/fetch": ("POST", ("source_id",), ()),
    "/api/reload": ("POST", (), ()),
}
INT64 = 2**63


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


EDGES = [
    "",
    "0",
    "-1",
    "1",
    "2",
    "500",
    "501",
    str(INT64 - 1),
    str(INT64),
    str(2**64),
    "99999999999999999999999999",
    "9" * 5000,  # more digits than int() takes
    "0" * 30 + "1",
    "²",
    "١٢٣",
    "1e3",
    " 1",
    "+1",
    "0x10",
    "\x00",
    "a\x00b",
    "%00",
    "..",
    "alpha",
    "beta",
    "alpha,beta",
    "alpha," * 300,
    "all",
    "merge",
    "xml",
    "atom",
    "json",
    "html",
    "2999-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "(",
    "(x+x+)+y",
    "(a)\\1",
    "a" * 300,
    cursor_of(f"v1:{INT64}"),
    cursor_of("v1:99999999999999999999999"),
    cursor_of("v1:-5"),
    cursor_of("v1:²"),
    cursor_of("v2:1"),
    "alpha-src",
    "600519.SH",
    "SH600519",
    "00700.HK",
    "NASDAQ:AAPL",
    "999999.SH",
]
VALUES = st.one_of(
    st.sampled_from(EDGES),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: cursor_of(f"v1:{n}")),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
)
# What a header may carry on the wire: any byte but controls (UTF-8 of any text, too).
HEADER_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=30).map(
    lambda text: text.encode("utf-8")
)
AUTHORIZATION = st.one_of(
    HEADER_TEXT,
    HEADER_TEXT.map(lambda token: b"Bearer " + token),
    st.sampled_from([b"Bearer " + TOKEN.encode(), b"Bearer \xc3\xa9", b"Bearer \xe9", b""]),
)


@pytest.fixture
def client(store: SqlStore, tmp_path: Path) -> TestClient:
    settings = stock_settings(TITLES, f"server: {{admin_token: {TOKEN}}}\n")
    stock(store, settings, {"alpha": 5, "beta": 3})
    config = tmp_path / "config.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'unused.db'}\n", encoding="utf-8")
    watcher = ConfigWatcher(config, settings)
    return TestClient(create_app(settings, store, watcher=watcher), raise_server_exceptions=False)


def test_the_surface_lists_every_endpoint() -> None:
    assert set(SURFACE) == {path for path, _ in ENDPOINTS + ADMIN_ENDPOINTS}


def url_for(path: str, segments: dict[str, str], query: dict[str, str]) -> str:
    for name, value in segments.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    if query:
        path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return path


@pytest.mark.parametrize("path", list(SURFACE))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_gives_a_server_error(client: TestClient, path: str, data: st.DataObject) -> None:
    method, segment_names, query_names = SURFACE[path]
    segments = {name: data.draw(VALUES, label=name) for name in segment_names}
    query = {
        name: data.draw(VALUES, label=name)
        for name in query_names
        if data.draw(st.booleans(), label=f"send {name}")
    }
    headers = {}
    if method == "POST":
        headers["authorization"] = data.draw(AUTHORIZATION, label="authorization")
    url = url_for(path, segments, query)
    response = client.request(method, url, headers=headers)
    assert response.status_code < 500, (url, headers, response.status_code, response.text)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"/feeds/alpha.xml?since={INT64}", 400),
        ("/feeds/alpha.xml?since=99999999999999999999999999", 400),
        ("/feeds/alpha.xml?since=0001-01-01T00:00:00%2B01:00", 400),
        ("/feeds/alpha.xml?limit=" + "9" * 5000, 400),
        ("/feeds/alpha.xml?limit=%C2%B2", 400),
        (f"/category/alpha.html?page={INT64 - 1}", 404),
        ("/item/99999999999999999999999.html", 404),
        ("/item/%C2%B2.html", 404),
        (f"/api/items?cursor={cursor_of(f'v1:{INT64}')}", 400),
        (f"/api/items?since={INT64}", 400),
        ("/feeds/a%00b.xml", 404),
        ("/category/a%00b.html", 404),
        ("/api/items?category=a%00b", 404),
    ],
)
def test_out_of_range_numbers_are_4xx(client: TestClient, url: str, status: int) -> None:
    """The inputs of the issue, each answered as it deserves."""
    assert client.get(url).status_code == status, url


def test_a_nul_in_a_source_id_is_a_404(client: TestClient) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/sources/a%00b/fetch", headers=auth).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xc3\xa9", b"Bearer \xe9", b"Bearer " + TOKEN.encode() + b"\xc3\xa9", b"Bearer", b""],
    ids=["utf-8 é", "latin-1 é", "token and é", "no token", "empty"],
)
def test_a_wrong_token_is_a_401_whatever_its_bytes(
    client: TestClient, authorization: bytes
) -> None:
    response = client.post("/api/sources/alpha-src/fetch", headers={"authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="aggregator"'
    right = client.post(
        "/api/sources/alpha-src/fetch", headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert right.status_code == 202


def test_a_token_with_non_ascii_characters_is_its_utf8(store: SqlStore) -> None:
    token = "管理员令牌-long-enough-1234"
    settings = stock_settings(TITLES, f"server: {{admin_token: {token}}}\n")
    stock(store, settings, {"alpha": 1})
    client = TestClient(create_app(settings, store))
    sent = b"Bearer " + token.encode("utf-8")
    assert (
        client.post("/api/sources/alpha-src/fetch", headers={"authorization": sent}).status_code
        == 202
    )
    wrong = b"Bearer " + token.encode("utf-8")[:-1]
    assert (
        client.post("/api/sources/alpha-src/fetch", headers={"authorization": wrong}).status_code
        == 401
    )
