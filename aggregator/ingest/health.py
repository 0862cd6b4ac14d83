"""A source's health across fetches: pure rules, no I/O.

* A permanent redirect (301/308) is adopted only once it repeats: the same target on
  ``REDIRECT_ADOPT_AFTER`` consecutive fetches. A one-off misconfiguration on the
  publisher's side must not move a source for good; a temporary redirect (302/307) is
  never adopted.
* ``410 Gone`` on ``RETIRE_AFTER_GONE`` consecutive fetches retires the source: it is no
  longer scheduled, and ``aggregator sources`` shows it. Changing its URL in the config,
  or a successful fetch by hand, brings it back.
* A feed that lists no items where it listed some is flagged, never acted on: nothing
  stored is deleted because a publisher served an empty page.

Model: Miniflux and lemon24/reader both adopt permanent redirects; the repeat rule and the
retirement follow the complaints of their users about feeds moved or killed by one bad
response.
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.model import SourceState

REDIRECT_ADOPT_AFTER = 3
RETIRE_AFTER_GONE = 3


@dataclass(frozen=True, slots=True)
class RedirectState:
    effective_url: str | None  # the adopted URL, None while the configured one holds
    pending_url: str | None  # a permanent target seen but not adopted yet
    pending_count: int


def follow_redirect(
    state: SourceState, permanent_target: str | None, adopt_after: int = REDIRECT_ADOPT_AFTER
) -> RedirectState:
    """The redirect state after a fetch that ended at ``permanent_target`` (None: the
    fetch was not permanently redirected)."""
    current = state.effective_url or state.url
    if permanent_target is None or permanent_target == current:
        return RedirectState(state.effective_url, None, 0)
    repeated = state.pending_redirect_url == permanent_target
    count = state.pending_redirect_count + 1 if repeated else 1
    if count >= adopt_after:
        return RedirectState(permanent_target, None, 0)
    return RedirectState(state.effective_url, permanent_target, count)


def count_gone(state: SourceState, http_status: int | None) -> int:
    """Consecutive 410 answers including this one."""
    return state.gone_count + 1 if http_status == 410 else 0


def is_retired(gone_count: int, retire_after: int = RETIRE_AFTER_GONE) -> bool:
    return gone_count >= retire_after


def item_count_warning(previous_count: int | None, item_count: int) -> str | None:
    """A warning when a feed lists nothing; ``previous_count`` is the last non-empty count."""
    if item_count > 0:
        return None
    if previous_count:
        return f"feed lists 0 items where it listed {previous_count}; nothing was deleted"
    return "feed lists no items"
