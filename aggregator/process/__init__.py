"""Process: what a source's new and changed items pass through before they are planned.

Enters: the identified items of one fetch (``(stable id, ParsedItem)`` pairs), what the
store knew of them (``KnownItem``, and the ids the same steps dropped before), and the
source's configured steps (``defaults.process`` then its own ``process``).
Leaves: the items to plan, each changed by its steps, the ones they dropped
(``DroppedItem``: counted per fetch, remembered, never stored) and the warnings of steps
that could not do their work (a full-text page that did not come).

A step is a small pure function ``(item, context) -> item | Dropped(reason)``, registered
by name; the config names them as one-key mappings (``- block: {pattern: ...}``)::

    values     Dropped, ProcessContext, FetchedPage: what steps take and give
    steps      the registry (name -> builder) and ``Pipeline``: one source's steps,
               compiled once per configuration
    filters    keep, block: a regular expression over named fields
    rewrite    remove elements, regex replacements, tracking parameters off links
    fulltext   fetch the item's page (through ``ProcessContext.fetch_page``), extract it
    convert    Simplified/Traditional Chinese (OpenCC's tables)
    stage      ``process_items``: one fetch's items through its pipeline, unchanged and
               already-dropped items skipped
"""
