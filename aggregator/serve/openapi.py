"""The OpenAPI 3.1 description of the HTTP service, served at /openapi.json (a test keeps
its paths in step with app.ENDPOINTS and docs/http.md). Holds no business logic.
"""

from __future__ import annotations

from typing import Any

from aggregator import __version__


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the service (kept in step with ENDPOINTS by a test)."""
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    json_any = {"content": {"application/json": {"schema": {"type": "object"}}}}
    json_list = {
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}
    }

    def param(
        name: str,
        where: str,
        description: str,
        required: bool = False,
        schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "in": where,
            "required": required or where == "path",
            "description": description,
            "schema": schema or {"type": "string"},
        }

    feed_params = [
        param(
            "limit",
            "query",
            "How many items (default 50, from 1 to 500; more is a 400).",
            schema={"type": "integer", "minimum": 1, "maximum": 500},
        ),
        param(
            "since",
            "query",
            "Only items with seq above this number, or updated after this ISO 8601 time.",
        ),
        param("q", "query", "Keep items whose title or text matches this RE2 pattern."),
        param("exclude", "query", "Drop items whose title or text matches this RE2 pattern."),
        param("format", "query", "xml, atom or json when the path has no extension."),
    ]
    feed_responses = {
        "200": {
            "description": "The feed.",
            "content": {
                "application/rss+xml": {"schema": {"type": "string"}},
                "application/atom+xml": {"schema": {"type": "string"}},
                "application/feed+json": {"schema": {"type": "object"}},
            },
        },
        "304": {"description": "Not modified since the validator sent."},
        "400": {"description": "A bad parameter.", **text},
        "404": {"description": "No such category; the body lists those that exist.", **text},
        "503": {
            "description": "q/exclude ran out of the request's time budget, or the database "
            "is not answering and this feed was not rendered before (Retry-After).",
            **text,
        },
    }
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    # while the database is away: pages rendered before are served stale (Cache-Status)
    away = "The database is not answering (Retry-After)."
    page_away = {"503": {"description": away, **text}}
    api_away = {"503": {"description": away, **json_any}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aggregator",
            "version": __version__,
            "description": "Feeds, pages and a JSON API over the aggregated items.",
        },
        "paths": {
            "/feeds/{name}.{ext}": {
                "get": {
                    "summary": "A category's feed ('all' for every category; 'merge' with c=).",
                    "parameters": [
                        param("name", "path", "A category slug, 'all' or 'merge'."),
                        param(
                            "ext",
                            "path",
                            "xml (RSS 2.0), atom or json (JSON Feed 1.1).",
                            schema={"type": "string", "enum": ["xml", "atom", "json"]},
                        ),
                        param("c", "query", "For merge: comma-separated category slugs."),
                        *feed_params,
                    ],
                    "responses": feed_responses,
                }
            },
            "/feeds/ticker/{code}.{ext}": {
                "get": {
                    "summary": "The items naming one security, in every category.",
                    "parameters": [
                        param("code", "path", "A ticker: 600519.SH, SH600519, 00700.HK, AAPL.US."),
                        param(
                            "ext",
                            "path",
                            "xml (RSS 2.0), atom or json (JSON Feed 1.1).",
                            schema={"type": "string", "enum": ["xml", "atom", "json"]},
                        ),
                        *feed_params,
                    ],
                    "responses": {**feed_responses, "404": {"description": "Not a ticker code."}},
                }
            },
            "/ticker/{code}.html": {
                "get": {
                    "summary": "The newest items naming one security, with its feeds.",
                    "parameters": [param("code", "path", "A ticker, e.g. 600519.SH.")],
                    "responses": {
                        "200": {"description": "The page.", **html},
                        "404": {"description": "Not a ticker code."},
                    },
                }
            },
            "/feeds/{name}": {
                "get": {
                    "summary": "A feed, its format from the format parameter (default xml).",
                    "parameters": [
                        param("name", "path", "A category slug, 'all' or 'merge'."),
                        param("c", "query", "For merge: category slugs."),
                        *feed_params,
                    ],
                    "responses": feed_responses,
                }
            },
            "/": {
                "get": {
                    "summary": "The latest items, then every category with its latest five.",
                    "responses": {"200": {"description": "The home page.", **html}, **page_away},
                }
            },
            "/category/{slug}.html": {
                "get": {
                    "summary": "A category's items, newest first, 50 a page.",
                    "parameters": [
                        param("slug", "path", "The category slug."),
                        param(
                            "page",
                            "query",
                            "Page number from 1.",
                            schema={"type": "integer", "minimum": 1},
                        ),
                    ],
                    "responses": {
                        "200": {"description": "The page.", **html},
                        "400": {"description": "A page that is not a number from 1.", **text},
                        "404": {"description": "No such category, or past its last page.", **html},
                        **page_away,
                    },
                }
            },
            "/item/{item_id}.html": {
                "get": {
                    "summary": "One item.",
                    "parameters": [
                        param("item_id", "path", "The item's number.", schema={"type": "integer"})
                    ],
                    "responses": {
                        "200": {"description": "The page.", **html},
                        "404": {"description": "No such item.", **html},
                        **page_away,
                    },
                }
            },
            "/api/items": {
                "get": {
                    "summary": "Items in commit order, paged by an opaque cursor: a consumer "
                    "paging while items arrive misses none and sees each once; an "
                    "item that changed appears again with is_update true.",
                    "parameters": [
                        param("category", "query", "Only this category."),
                        param("ticker", "query", "Only items naming this security (600519.SH)."),
                        param(
                            "since",
                            "query",
                            "Start after this seq (first page only).",
                            schema={"type": "integer"},
                        ),
                        param("cursor", "query", "next_cursor from the previous page."),
                        param(
                            "limit",
                            "query",
                            "Items per page (default 100, from 1 to 500; more is a 400).",
                            schema={"type": "integer", "minimum": 1, "maximum": 500},
                        ),
                    ],
                    "responses": {
                        "200": {"description": "A page of items.", **json_any},
                        "400": {"description": "A bad parameter.", **json_any},
                        "404": {"description": "No such category.", **json_any},
                        **api_away,
                    },
                }
            },
            "/api/categories": {
                "get": {
                    "summary": "Every category with its feeds.",
                    "responses": {"200": {"description": "Categories.", **json_list}, **api_away},
                }
            },
            "/api/sources": {
                "get": {
                    "summary": "Each source's fetch status.",
                    "responses": {"200": {"description": "Sources.", **json_list}, **api_away},
                }
            },
            "/feeds.opml": {
                "get": {
                    "summary": "Every output feed (each category, all merged), grouped, as "
                    "OPML 2.0: subscribe to all in one step.",
                    "responses": {
                        "200": {
                            "description": "OPML.",
                            "content": {"text/x-opml": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/status": {
                "get": {
                    "summary": "Every source's status as an HTML page, failing ones first "
                    "(the rows of /api/sources).",
                    "responses": {"200": {"description": "HTML.", **html}},
                }
            },
            "/status/{source_id}": {
                "get": {
                    "summary": "One source's status and its last fetches from the log.",
                    "parameters": [param("source_id", "path", "A source id.")],
                    "responses": {
                        "200": {"description": "HTML.", **html},
                        "404": {"description": "No such source.", **html},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics: fetches, items, sources by health, "
                    "schedule lag, commit batches, HTTP requests, render cache.",
                    "responses": {"200": {"description": "Prometheus text format.", **text}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI.", **json_any}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the process answers.",
                    "responses": {"200": {"description": "Alive.", **json_any}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: database reachable, scheduler alive.",
                    "responses": {
                        "200": {"description": "Ready.", **json_any},
                        "503": {"description": "Not ready; problems listed.", **json_any},
                    },
                }
            },
            "/api/sources/{source_id}/fetch": {
                "post": {
                    "summary": "Make a source due now (and un-retire it); any fetching "
                    "process picks it up within a second. Exists only with an admin token.",
                    "security": [{"adminToken": []}],
                    "parameters": [param("source_id", "path", "The source's id.")],
                    "responses": {
                        "202": {"description": "Due now.", **json_any},
                        "401": {"description": "No or wrong bearer token.", **json_any},
                        "404": {"description": "No such source.", **json_any},
                    },
                }
            },
            "/api/reload": {
                "post": {
                    "summary": "Read the config file again now. Invalid: the last good "
                    "config stays and the problems are listed. Exists only with an admin "
                    "token.",
                    "security": [{"adminToken": []}],
                    "responses": {
                        "200": {"description": "Applied or unchanged.", **json_any},
                        "401": {"description": "No or wrong bearer token.", **json_any},
                        "422": {"description": "Invalid; nothing changed.", **json_any},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
