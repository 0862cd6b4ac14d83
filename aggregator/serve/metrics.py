"""Counting HTTP requests for ``/metrics``: an ASGI layer in front of the app, and the
``/metrics`` answer itself.

Requests are labelled by the route template that answered (``/feeds/{name}.{ext}``, not
the path asked for), so the number of label values stays bounded whatever clients ask
for; a request no route matched counts as ``unmatched``. Feed requests the fast path
answers before routing are matched against the routes here, after the answer went out.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from aggregator.observe.metrics import CONTENT_TYPE, HTTP_REQUESTS, HTTP_SECONDS, exposition
from aggregator.store import Store


def metrics_response(request: Request, store: Store) -> Response:
    """``GET /metrics``: the Prometheus text exposition, never cached."""
    return Response(
        exposition(store), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )


def route_template(scope: dict[str, Any], routes: list[BaseRoute]) -> str:
    """The template of the route that answered ``scope``, or ``unmatched``."""
    route = scope.get("route")
    if route is None:
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetrics:
    """ASGI middleware: one count and one latency observation per HTTP request."""

    def __init__(self, app: Any, routes: list[BaseRoute], state: Any = None) -> None:
        self.app = app
        self.routes = routes
        self.state = state  # the Starlette app's state, for tests and tools
        # labelled children by (route, status): .labels() costs more than the increment,
        # and the keys are bounded (routes times statuses)
        self.children: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            key = (route_template(scope, self.routes), status)
            children = self.children.get(key)
            if children is None:
                children = (HTTP_REQUESTS.labels(key[0], str(status)), HTTP_SECONDS.labels(key[0]))
                self.children[key] = children
            children[0].inc()
            children[1].observe(elapsed)
