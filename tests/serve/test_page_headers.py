"""The HTML pages' security headers (issue 13): Content-Security-Policy allowing exactly
what the pages use, X-Content-Type-Options and Referrer-Policy, on every page, 404s
included, from the route and from the cache alike. tests/serve/test_browser.py checks in
a real browser that the policy blocks nothing the pages need."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from starlette.testclient import TestClient

from aggregator.serve.app import create_app
from aggregator.store.sql import SqlStore
from tests.serve.stock import stock, stock_settings

PAGES = [
    ("/", 200),
    ("/category/alpha.html", 200),
    ("/item/1.html", 200),
    ("/category/nope.html", 404),
    ("/category/alpha.html?page=9", 404),
    ("/item/999999.html", 404),
]


@pytest.fixture
def client(store: SqlStore) -> TestClient:
    settings = stock_settings({"alpha": "甲"})
    stock(store, settings, {"alpha": 3}, body='<p>正文<img src="http://img.example/a.png"></p>')
    return TestClient(create_app(settings, store))


def style_hashes(html: str) -> list[str]:
    head = html.partition("<body")[0]
    return [
        base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        for css in re.findall(r"<style[^>]*>(.*?)</style>", head, re.DOTALL)
    ]


@pytest.mark.parametrize(("path", "status"), PAGES)
def test_every_page_carries_the_headers(client: TestClient, path: str, status: int) -> None:
    for encoding in ("identity", "gzip"):  # and again from the cache, gzipped
        response = client.get(path, headers={"accept-encoding": encoding})
        assert response.status_code == status
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        hashes = style_hashes(response.text)
        assert hashes  # the pages style themselves inline
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; "
            + "style-src "
            + " ".join(f"'sha256-{h}'" for h in hashes)
            + "; img-src http: https:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )


def test_feeds_and_the_api_carry_no_page_policy(client: TestClient) -> None:
    for path in ("/feeds/alpha.xml", "/api/items", "/openapi.json"):
        assert "content-security-policy" not in client.get(path).headers


def test_a_style_in_the_body_is_not_allowed() -> None:
    """Only the head's stylesheets get a hash: the body is where feed text goes."""
    from aggregator.serve.httpcache import page_security_headers

    page = b"<html><head><style>a{}</style></head><body><style>b{}</style></body></html>"
    policy = dict(page_security_headers(page))["content-security-policy"]
    allowed = base64.b64encode(hashlib.sha256(b"a{}").digest()).decode()
    refused = base64.b64encode(hashlib.sha256(b"b{}").digest()).decode()
    assert f"'sha256-{allowed}'" in policy
    assert refused not in policy
