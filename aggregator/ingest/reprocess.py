"""Reprocessing one source: its steps over its stored items, as ``aggregator reprocess
--source ID`` asks (changing steps alone never touches stored items)::

    claim the source's lease        (no fetch of it runs meanwhile; else SourceBusyError)
    stored  = store.list_source_items(id)             # the items it stored first
    result  = reprocess_items(stored, its steps)      # pure, process/reprocess.py
    store.rewrite_items(id, result.intents, now)      # updates with new seqs
    release the lease
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.errors import SourceBusyError, SourceNotFoundError
from aggregator.ingest.update import Context, page_fetch
from aggregator.process.reprocess import reprocess_items
from aggregator.process.steps import compile_steps


@dataclass(frozen=True, slots=True)
class ReprocessReport:
    source_id: str
    items: int = 0
    updated: int = 0
    would_drop: tuple[tuple[str, str], ...] = ()  # (stable id, reason): left stored
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        """What the command line prints: a line, and one per warning of a step."""
        lines = [f"warning: {warning}" for warning in self.warnings]
        lines += [f"would drop {stable_id}: {reason}" for stable_id, reason in self.would_drop]
        lines.append(
            f"{self.source_id}: {self.items} stored item(s), {self.updated} updated, "
            f"{len(self.would_drop)} the steps would now drop (left stored)"
        )
        return "\n".join(lines)


def reprocess_source(ctx: Context, source_id: str) -> ReprocessReport:
    """See the module docstring. Raises SourceNotFoundError for a source that is not in
    the config or was never stored (nothing to reprocess), SourceBusyError while another
    process fetches it, StoreError."""
    try:
        source = ctx.settings.source(source_id)
    except KeyError:
        raise SourceNotFoundError(f"no source {source_id!r} in the config") from None
    ctx.store.get_source_state(source_id)  # raises SourceNotFoundError
    now = ctx.now()
    if not ctx.store.claim_sources([source.id], now, ctx.owner, ctx.settings.defaults.lease):
        raise SourceBusyError(f"{source_id} is being fetched by another process; try again")
    try:
        stored = ctx.store.list_source_items(source.id)
        steps = compile_steps(source.effective_steps(ctx.settings.defaults))
        result = reprocess_items(stored, steps, source.id, page_fetch(ctx, source))
        counts = ctx.store.rewrite_items(source.id, result.intents, now)
    finally:
        ctx.store.release_lease(source.id, ctx.owner)
    return ReprocessReport(
        source.id, len(stored), counts.updated, result.would_drop, result.warnings
    )
