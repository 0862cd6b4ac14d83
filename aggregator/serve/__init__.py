"""Serve: the HTTP face of the service (ASGI).

Enters: HTTP requests, and the ``Store`` and ``Publisher`` the process opened.
Leaves: HTTP responses: feeds, pages, the JSON API and health, with conditional GET
and caching handled in one place.

    app        the routes (Starlette), the endpoint list and create_app
    httpcache  Document, conditional GET, response headers and the one LRU of documents
    fastpath   the raw ASGI layer in front: repeated feed requests answered from that
               cache, raw UTF-8 in a query string percent-encoded for Starlette
    openapi    the OpenAPI description served at /openapi.json
    admin      the mutating endpoints (bearer token): fetch a source now, reload the config
    availability  serving while the database is away: stale documents, 503s, two log lines
"""
