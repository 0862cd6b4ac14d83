"""Ingest: from a source's URL to what the store should write.

Enters: a configured ``Source``, its ``SourceState`` (what the store knew before) and
what the store already holds for the items the feed names (``FetchKnowledge``).
Leaves: ``ItemIntent`` values (what to write for each new or changed item), the next
``SourceUpdate`` and a ``FetchOutcome``, handed to a ``FetchSink`` (the store by default).

The stages, in the order one fetch runs them (``update.update_source`` is their one
orchestrator; everything but ``fetcher`` and ``update`` is pure)::

    fetcher    HTTP with limits, a deadline and conditional GET -> Retrieved | NotModified
    parser     bytes -> ParsedFeed (``fastparse``: the lxml fast path for common RSS/Atom)
    identity   ParsedItem -> stable id (infoCode, guid, link, content hash)
    (process)  the source's processing steps over new and changed items (aggregator/process/)
    decide     ParsedItem + KnownItem -> ItemIntent (new, changed or unchanged)
    freshness  when the source is next due
    health     redirects, 410 Gone, item-count warnings
    reprocess  a source's steps again over its stored items (``aggregator reprocess``)
"""
