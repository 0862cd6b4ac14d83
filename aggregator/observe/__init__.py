"""Observing the service: Prometheus metrics (metrics.py).

In: fetch outcomes (the scheduler's ``on_outcome``), group-commit batch sizes, HTTP
requests and render-cache lookups, and the store at scrape time (sources by health,
schedule lag). Out: the Prometheus text exposition served at ``GET /metrics``. A sibling
of ingest and publish on floor 3: it reads the store protocol and imports no stage.
"""
