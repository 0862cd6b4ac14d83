"""``GET /status`` and ``GET /status/{source_id}``: the operators' pages, rendered from
the same rows as ``/api/sources`` and the fetch log, never cached (they change with
every fetch and are read rarely)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from aggregator.publish.pages import HTML_CONTENT_TYPE, render_not_found
from aggregator.publish.status import FETCH_HISTORY, render_source_status, render_status
from aggregator.store import Store

NO_CACHE = {"Cache-Control": "no-cache"}


def status_page(request: Request, store: Store, root: str) -> Response:
    body = render_status(store.list_source_status(), root, datetime.now(UTC))
    return Response(body, media_type=HTML_CONTENT_TYPE, headers=NO_CACHE)


def source_status_page(request: Request, store: Store, root: str) -> Response:
    source_id: str = request.path_params["source_id"]
    found = [s for s in store.list_source_status() if s.source_id == source_id]
    if not found:
        body = render_not_found(f"没有来源 “{source_id}”。", [], root)
        return Response(body, status_code=404, media_type=HTML_CONTENT_TYPE)
    fetches = store.list_fetches(source_id, FETCH_HISTORY)
    body = render_source_status(found[0], fetches, root)
    return Response(body, media_type=HTML_CONTENT_TYPE, headers=NO_CACHE)
