"""Serve: the HTTP face of the service (ASGI).

Enters: HTTP requests, and the ``Store`` and ``Publisher`` the process opened.
Leaves: HTTP responses: feeds, pages, the JSON API and health, with conditional GET
and caching handled in one place.
"""
