"""Publish: from stored items to documents (feeds, pages, exports), without HTTP.

Enters: ``StoredItem``, ``CategoryInfo`` and ``SourceInfo`` read through the ``Store``
protocol (never its SQL implementation), and a ``FeedQuery`` (filters, cursors).
Leaves: rendered bytes with their content type and freshness stamps, and files written
by the static and Jekyll exports.

    query      what a feed request asks for (filters, cursors), parsed and matched
    render     the RSS 2.0, Atom and JSON Feed renderers, and the Jekyll post
    pages      the HTML pages (Jinja templates in ``templates/``)
    status     the operators' status pages (every source; one source's fetches)
    formats    every output format by extension (feeds and the HTML page), listed
    publisher  channel metadata, item views and rendering for one request
    export     static site and Jekyll posts written to a directory
"""
