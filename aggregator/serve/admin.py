"""The mutating endpoints, routed only when an admin token is configured: bearer-token
checks, making a source due now, and reloading the config (see app.ADMIN_ENDPOINTS)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.config.reload import ConfigWatcher, ReloadResult
from aggregator.errors import SourceNotFoundError, StoreError
from aggregator.store import Store


def _json(data: object, status: int) -> JSONResponse:
    return JSONResponse(data, status_code=status, media_type="application/json; charset=utf-8")


def refused(request: Request, token: str | None) -> Response | None:
    """None when the request carries the admin ``token``, else the 401 to send."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare bytes: compare_digest refuses str with non-ASCII characters (TypeError).
    # Starlette decodes header bytes as Latin-1, so this gives back the bytes sent,
    # which for a token with non-ASCII characters are its UTF-8.
    sent, expected = given.encode("latin-1"), (token or "").encode("utf-8")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(sent, expected):
        return None
    return JSONResponse(
        {"error": "a valid admin bearer token is required"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="aggregator"'},
    )


def fetch_now(request: Request, store: Store) -> Response:
    """POST /api/sources/{source_id}/fetch: the source is due now."""
    source_id: str = request.path_params["source_id"]
    if "\x00" in source_id:  # no source id holds one, and PostgreSQL refuses it in text
        return _json({"error": f"no source {source_id!r}"}, 404)
    now = datetime.now(UTC)
    try:
        store.request_fetch(source_id, now)
    except SourceNotFoundError:
        return _json({"error": f"no source {source_id!r}"}, 404)
    except StoreError as e:
        return _json({"error": f"database: {e}"}, 503)
    return _json({"source": source_id, "due_at": now.isoformat()}, 202)


def reload_now(watcher: ConfigWatcher) -> Response:
    """POST /api/reload: read the config file now."""
    result = watcher.check(force=True)
    status = 422 if result is ReloadResult.REJECTED else 200
    return _json({"result": result.value, "config": watcher.status().as_json()}, status)
