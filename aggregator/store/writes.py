"""The item-writing hot path of the SQL store: the lookups before a fetch's write, and
its intents in a handful of batched statements inside the caller's transaction.

Written against the DB-API cursor (``Raw``) with SQL text fixed at import:
building and compiling SQLAlchemy constructs per call cost more than the writes
themselves (measured: about 270 µs of 500 µs per item on a cold pass). The statements are
plain SQL that SQLite and PostgreSQL both accept (``ON CONFLICT``, ``RETURNING``); only
the placeholder style and datetime binding differ, handled by ``Dialect``.

    before the write    SELECT ... FROM pruned_items / items LEFT JOIN item_sources /
                        item_categories ... IN (...)             (known_among, pruned_among)
    reserve seqs        UPDATE counters ... RETURNING            (locks the counter row)
    insert new items    INSERT ... VALUES (..),(..) ON CONFLICT (stable_id) DO NOTHING
    read back ids       SELECT item_id, stable_id, seq, published_at ... IN (...)
    update changed      UPDATE items ... per changed item
    memberships         INSERT INTO item_categories ... ON CONFLICT DO NOTHING
    provenance          INSERT INTO item_sources ... ON CONFLICT DO UPDATE
    tickers             new and changed items: DELETE theirs, INSERT INTO item_tickers
    media               DELETE FROM item_media (updated items), INSERT ... VALUES (..),(..)
    stamps              UPDATE categories SET last_seq ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aggregator.model import (
    CategoryRef,
    FetchOutcome,
    Holder,
    IntentKind,
    ItemIntent,
    KnownItem,
)
from aggregator.slug import identity_key
from aggregator.store.dbapi import SEQ_COUNTER, Dialect, Raw, RowsInsert, chunks, host_of

if TYPE_CHECKING:
    from aggregator.store import SourceUpdate


@dataclass(frozen=True, slots=True)
class WriteResult:
    new: int
    updated: int
    memberships: int


_ITEM_COLUMNS = (
    "stable_id, seq, first_seq, title, link, guid, summary, content, author, published_at, "
    "published_offset_minutes, first_seen_at, updated_at, update_count, source_id, "
    "source_updated_at"
)


_MEMBERS_OF = "SELECT item_id, category_slug FROM item_categories WHERE item_id"
# Whether the source bound to the one "?" takes precedence over the source in the column
# ``holder`` (whose copy of an item is stored): a lower sources.precedence comes first,
# ties by source id (two processes between config generations); a source no longer
# configured (NULL) comes after every configured one, and a holder with no row at all
# after any source. The rule is written once, here: the reads before a fetch (Holder) and
# the guard on every write of an item's copy both use it, so a decision made on a stale
# read can never put a lower source's copy over a higher one's.
_LAST = 2**31 - 1
_PRECEDES = (
    "EXISTS (SELECT 1 FROM sources mine LEFT JOIN sources held ON held.source_id = {holder} "
    "WHERE mine.source_id = ? AND mine.source_id <> {holder} AND (held.source_id IS NULL "
    f"OR (COALESCE(mine.precedence, {_LAST}), mine.source_id) "
    f"< (COALESCE(held.precedence, {_LAST}), held.source_id)))"
)


class ItemWriter:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        d = dialect
        self.reserve = d.sql("UPDATE counters SET value = value + ? WHERE name = ? RETURNING value")
        self.lock_seq = d.sql("SELECT value FROM counters WHERE name = ? FOR UPDATE")
        self.insert_item = RowsInsert(
            d, f"INSERT INTO items ({_ITEM_COLUMNS})", 16, "ON CONFLICT (stable_id) DO NOTHING"
        )
        self.insert_category = d.sql(
            "INSERT INTO categories (slug, title, description, name, identity_key, origin, "
            f"created_at, last_seq) VALUES ({d.marks(8)}) ON CONFLICT DO NOTHING"
        )
        self.insert_member = RowsInsert(
            d,
            "INSERT INTO item_categories (item_id, category_slug, published_at, added_at)",
            4,
            "ON CONFLICT DO NOTHING",
        )
        # one row per item of one source: no key twice in a statement, as PostgreSQL's
        # ON CONFLICT DO UPDATE requires
        self.upsert_source = RowsInsert(
            d,
            "INSERT INTO item_sources (item_id, source_id, content_sha256, first_seen_at, "
            "last_seen_at)",
            5,
            "ON CONFLICT (item_id, source_id) DO UPDATE "
            "SET content_sha256 = excluded.content_sha256, last_seen_at = excluded.last_seen_at",
        )
        # an item's media, replaced as a whole when it is updated (0007)
        self.insert_media = RowsInsert(
            d,
            "INSERT INTO item_media (item_id, position, url, role, type, length, medium, "
            "width, height, duration_seconds)",
            10,
        )
        self.delete_media = d.sql("DELETE FROM item_media WHERE item_id = ?")
        self.bump_seq = d.sql("UPDATE items SET seq = ? WHERE item_id = ?")
        self.clear_tickers = d.sql("DELETE FROM item_tickers WHERE item_id = ?")
        self.insert_ticker = RowsInsert(
            d, "INSERT INTO item_tickers (item_id, code, published_at)", 3, "ON CONFLICT DO NOTHING"
        )
        self.insert_fetch = d.sql(
            "INSERT INTO fetches (source_id, started_at, duration_ms, outcome, http_status, "
            "bytes_received, new_count, updated_count, unchanged_count, item_count, error, "
            f"error_class, warning, dropped_count) VALUES ({d.marks(14)})"
        )
        # what processing steps dropped (process/): remembered per source
        self.upsert_dropped = RowsInsert(
            d,
            "INSERT INTO dropped_items (source_id, stable_id, content_sha256, steps_sha256, "
            "reason, dropped_at)",
            6,
            "ON CONFLICT (source_id, stable_id) DO UPDATE SET "
            "content_sha256 = excluded.content_sha256, steps_sha256 = excluded.steps_sha256, "
            "reason = excluded.reason, dropped_at = excluded.dropped_at",
        )
        # The lease is released only if it is still ours (it may have expired and moved).
        self.update_source_sql = d.sql(
            "UPDATE sources SET next_due_at = ?, last_fetch_at = ?, last_outcome = ?, "
            "last_status = ?, last_error = ?, consecutive_errors = ?, etag = ?, "
            "last_modified = ?, body_sha256 = ?, effective_url = ?, feed_title = ?, "
            "last_success_at = COALESCE(?, last_success_at), "
            "last_item_count = COALESCE(NULLIF(?, 0), last_item_count), "
            "pending_redirect_url = ?, pending_redirect_count = ?, gone_count = ?, "
            "last_warning = ?, host = COALESCE(?, host), "
            "last_dropped_count = COALESCE(?, last_dropped_count), "
            "retired_at = CASE WHEN ? THEN COALESCE(retired_at, ?) ELSE NULL END, "
            "lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END, "
            "lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END "
            "WHERE source_id = ?"
        )
        self.move_members = d.sql(
            "UPDATE item_categories SET published_at = ? WHERE item_id = ? RETURNING category_slug"
        )

    def _select_in(
        self, raw: Raw, head: str, values: Sequence[Any], before: Sequence[Any] = ()
    ) -> Iterator[Any]:
        """The rows of ``head IN (values)``, in chunks; ``before`` binds the placeholders
        that come ahead of the list."""
        for part in chunks(values):
            yield from raw.all(
                self.d.sql(f"{head} IN ({self.d.marks(len(part))})"), (*before, *part)
            )

    # ------------------------------------------------------------------ before a fetch

    def pruned_among(self, raw: Raw, stable_ids: Sequence[str]) -> set[str]:
        """The ids among these that retention pruned."""
        head = "SELECT stable_id FROM pruned_items WHERE stable_id"
        return {row[0] for row in self._select_in(raw, head, stable_ids)}

    def dropped_among(
        self, raw: Raw, source_id: str, stable_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        """The ids among these that ``source_id``'s steps dropped: (the item's hash, the
        steps' fingerprint) of each."""
        head = (
            "SELECT stable_id, content_sha256, steps_sha256 FROM dropped_items "
            "WHERE source_id = ? AND stable_id"
        )
        return {
            stable_id: (content, steps)
            for stable_id, content, steps in self._select_in(raw, head, stable_ids, (source_id,))
        }

    def known_among(
        self, raw: Raw, source_id: str, stable_ids: Sequence[str]
    ) -> dict[str, KnownItem]:
        """The stored items among these: this source's content hash of each (None when
        only others gave it), whose copy is stored (``Holder``) and its categories."""
        head = (
            "SELECT i.item_id, i.stable_id, s.content_sha256, CASE WHEN i.source_id = ? "
            f"THEN 'self' WHEN {_PRECEDES.format(holder='i.source_id')} THEN 'yielding' "
            "ELSE 'prevailing' END FROM items i "
            "LEFT JOIN item_sources s ON s.item_id = i.item_id AND s.source_id = ? "
            "WHERE i.stable_id"
        )
        found = {
            stable_id: (item_id, sha, Holder(holder))
            for item_id, stable_id, sha, holder in self._select_in(
                raw, head, stable_ids, (source_id, source_id, source_id)
            )
        }
        slugs: dict[int, set[str]] = {}
        for item_id, slug in self._select_in(
            raw, _MEMBERS_OF, [item_id for item_id, _, _ in found.values()]
        ):
            slugs.setdefault(item_id, set()).add(slug)
        return {
            stable_id: KnownItem(stable_id, sha, frozenset(slugs.get(item_id, ())), holder)
            for stable_id, (item_id, sha, holder) in found.items()
        }

    # ------------------------------------------------------------------ per fetch

    def record_fetch(self, raw: Raw, outcome: FetchOutcome, new: int, updated: int) -> None:
        raw.run(
            self.insert_fetch,
            (
                outcome.source_id,
                self.d.dt(outcome.started_at),
                int(outcome.duration_seconds * 1000),
                outcome.kind.value,
                outcome.http_status,
                outcome.bytes_received,
                new,
                updated,
                outcome.unchanged_count,
                outcome.item_count,
                outcome.error,
                outcome.error_class,
                "; ".join(outcome.warnings) or None,
                outcome.dropped_count,
            ),
        )
        if outcome.dropped:
            at = self.d.dt(outcome.started_at)
            rows = {
                d.stable_id: (
                    outcome.source_id,
                    d.stable_id,
                    d.content_sha256,
                    d.steps_sha256,
                    d.reason,
                    at,
                )
                for d in outcome.dropped
            }
            raw.insert(self.upsert_dropped, list(rows.values()))

    def update_source(
        self, raw: Raw, outcome: FetchOutcome, owner: str, state: SourceUpdate
    ) -> None:
        success = None if outcome.error is not None else self.d.dt(outcome.started_at)
        raw.run(
            self.update_source_sql,
            (
                self.d.dt(outcome.next_due_at),
                self.d.dt(outcome.started_at),
                outcome.kind.value,
                outcome.http_status,
                outcome.error,
                state.consecutive_errors,
                state.etag,
                state.last_modified,
                state.body_sha256,
                state.effective_url,
                state.feed_title,
                success,
                outcome.item_count,
                state.pending_redirect_url,
                state.pending_redirect_count,
                state.gone_count,
                state.warning,
                host_of(state.effective_url) if state.effective_url else None,
                outcome.dropped_count if outcome.item_count is not None else None,
                state.retired,
                self.d.dt(outcome.started_at),
                owner,
                owner,
                outcome.source_id,
            ),
        )

    # ------------------------------------------------------------------ steps

    def ensure_categories(self, raw: Raw, refs: Sequence[CategoryRef], now: datetime) -> None:
        raw.many(
            self.insert_category,
            [
                (
                    ref.slug,
                    ref.title,
                    ref.description,
                    ref.name,
                    identity_key(ref.name) if ref.name else None,
                    "derived",
                    self.d.dt(now),
                    0,
                )
                for ref in refs
            ],
        )

    def _reserve(self, raw: Raw, count: int) -> int:
        (last,) = raw.one(self.reserve, (count, SEQ_COUNTER))
        return int(last) - count + 1

    def _lookup(self, raw: Raw, stable_ids: Sequence[str]) -> dict[str, tuple[int, int, Any]]:
        """stable id -> (item id, seq, published_at as stored: ready to bind again)."""
        head = "SELECT item_id, stable_id, seq, published_at FROM items WHERE stable_id"
        return {
            stable_id: (item_id, seq, published)
            for item_id, stable_id, seq, published in self._select_in(raw, head, stable_ids)
        }

    def _update(
        self, raw: Raw, source_id: str, intent: ItemIntent, seq: int, now: datetime
    ) -> tuple[int, datetime, list[str]] | None:
        """Put ``source_id``'s copy in the stored item's place, if the stored one is its
        own or that of a source it takes precedence over (else None: nothing written)."""
        sets = [
            "source_id = ?",
            "title = ?",
            "link = ?",
            "guid = ?",
            "summary = ?",
            "author = ?",
            "seq = ?",
            "updated_at = ?",
            "update_count = update_count + 1",
            "source_updated_at = ?",
        ]
        values: list[Any] = [
            source_id,
            intent.title,
            intent.link,
            intent.guid,
            intent.summary,
            intent.author,
            seq,
            self.d.dt(now),
            self.d.dt(intent.source_updated_at),
        ]
        if not (intent.is_content_external and intent.content is None):
            sets.append("content = ?")
            values.append(intent.content)
        if intent.is_published_firm:
            sets += ["published_at = ?", "published_offset_minutes = ?"]
            values += [self.d.dt(intent.published_at), intent.published_offset_minutes]
        sql = self.d.sql(
            f"UPDATE items SET {', '.join(sets)} WHERE stable_id = ? AND (source_id = ? OR "
            f"{_PRECEDES.format(holder='items.source_id')}) RETURNING item_id, published_at"
        )
        row = raw.one(sql, (*values, intent.stable_id, source_id, source_id))
        if row is None:
            return None
        published = self.d.read_dt(row[1])
        moved = raw.all(self.move_members, (self.d.dt(published), row[0]))
        return int(row[0]), published, [str(r[0]) for r in moved]

    def _write_tickers(
        self,
        raw: Raw,
        intents: Sequence[ItemIntent],
        new_ids: set[str],
        changed_ids: set[str],
        item_ids: Mapping[str, int],
        published: Mapping[str, Any],
    ) -> None:
        """A new item's tickers, and a changed item's anew (its text, hence its tickers,
        or its published time may have changed). Memberships leave them alone, and so
        does an update without its body (a JSON API listing: the stored body stays, and
        so do the codes found in it; the listing's are added)."""
        by_id = {i.stable_id: i for i in intents}
        cleared = [
            sid
            for sid in sorted(changed_ids)
            if not (by_id[sid].is_content_external and by_id[sid].content is None)
        ]
        raw.many(self.clear_tickers, [(item_ids[sid],) for sid in cleared])
        raw.insert(
            self.insert_ticker,
            [
                (item_ids[i.stable_id], code, published[i.stable_id])
                for i in intents
                if i.stable_id in new_ids or i.stable_id in changed_ids
                for code in i.tickers
            ],
        )

    def _write_media(
        self,
        raw: Raw,
        intents: Sequence[ItemIntent],
        new_ids: set[str],
        replaced: list[int],
        item_ids: dict[str, int],
    ) -> None:
        """The media of the items inserted or updated now (an update replaces them all)."""
        raw.many(self.delete_media, [(item_id,) for item_id in replaced])
        written = set(replaced)
        rows = [
            (
                item_ids[i.stable_id],
                position,
                m.url,
                m.role,
                m.type,
                m.length,
                m.medium,
                m.width,
                m.height,
                m.duration_seconds,
            )
            for i in intents
            if i.media
            and i.stable_id in item_ids
            and (i.stable_id in new_ids or item_ids[i.stable_id] in written)
            for position, m in enumerate(i.media)
        ]
        raw.insert(self.insert_media, rows)

    def stamp_categories(self, raw: Raw, slugs: set[str], top_seq: int) -> None:
        """Categories whose content changed get the write's highest seq as their stamp
        (seq order is commit order, so the stamp only ever grows)."""
        for part in chunks(sorted(slugs)):
            sql = self.d.sql(
                f"UPDATE categories SET last_seq = ? WHERE slug IN ({self.d.marks(len(part))}) "
                "AND last_seq < ?"
            )
            raw.run(sql, (top_seq, *part, top_seq))

    # ------------------------------------------------------------------ the write

    def write(
        self, raw: Raw, source_id: str, intents: Sequence[ItemIntent], now: datetime
    ) -> tuple[WriteResult, set[str], int]:
        """Write intents; returns the counts, the categories whose content changed, and
        the highest seq used (the stamp for those categories)."""
        first_seq = self._reserve(raw, len(intents))
        seq_of = {intent.stable_id: first_seq + i for i, intent in enumerate(intents)}
        at = self.d.dt(now)
        dt = self.d.dt
        wanted_new = {i.stable_id for i in intents if i.kind is IntentKind.NEW}
        raw.insert(
            self.insert_item,
            [
                (
                    i.stable_id,
                    seq_of[i.stable_id],
                    seq_of[i.stable_id],
                    i.title,
                    i.link,
                    i.guid,
                    i.summary,
                    i.content,
                    i.author,
                    dt(i.published_at),
                    i.published_offset_minutes,
                    at,
                    at,
                    0,
                    source_id,
                    dt(i.source_updated_at),
                )
                for i in intents
                if i.kind is IntentKind.NEW
            ],
        )
        rows = self._lookup(raw, [i.stable_id for i in intents])
        # inserted now: the stored seq is the one this write gave it. A NEW intent that
        # found the id taken (another worker inserted it first) replaces that copy when
        # its source takes precedence, else it becomes a membership; so does an UPDATED
        # one whose copy a source that takes precedence replaced since it was decided.
        new_ids = {sid for sid in wanted_new if sid in rows and rows[sid][1] == seq_of[sid]}
        item_ids = {sid: row[0] for sid, row in rows.items()}
        published = {sid: row[2] for sid, row in rows.items()}
        touched: set[str] = set()
        replaced: set[str] = set()
        for intent in intents:
            sid = intent.stable_id
            if intent.kind is IntentKind.MEMBERSHIP or sid in new_ids or sid not in rows:
                continue
            changed = self._update(raw, source_id, intent, seq_of[sid], now)
            if changed is not None:
                replaced.add(sid)
                published[sid] = dt(changed[1])
                touched.update(changed[2])
        written = new_ids | replaced  # these have their new seq already
        # memberships: which (item, category) pairs are missing. New items have none.
        have: set[tuple[int, str]] = set()
        existing = sorted({item_ids[sid] for sid in item_ids if sid not in new_ids})
        have |= {(r[0], r[1]) for r in self._select_in(raw, _MEMBERS_OF, existing)}
        member_rows = []
        joined: set[str] = set()
        for intent in intents:
            item_id = item_ids.get(intent.stable_id)
            if item_id is None:
                continue
            for ref in intent.categories:
                if (item_id, ref.slug) in have:
                    continue
                have.add((item_id, ref.slug))
                member_rows.append((item_id, ref.slug, published[intent.stable_id], at))
                touched.add(ref.slug)
                if intent.stable_id not in written:
                    joined.add(intent.stable_id)
        raw.insert(self.insert_member, member_rows)
        # an item that joins a category is news there: a new seq (new and updated items
        # already have theirs from this write)
        raw.many(self.bump_seq, [(seq_of[sid], item_ids[sid]) for sid in sorted(joined)])
        raw.insert(
            self.upsert_source,
            [
                (item_ids[i.stable_id], source_id, i.content_sha256, at, at)
                for i in intents
                if i.stable_id in item_ids
            ],
        )
        self._write_tickers(raw, intents, new_ids, replaced, item_ids, published)
        self._write_media(
            raw, intents, new_ids, [item_ids[sid] for sid in sorted(replaced)], item_ids
        )
        top = first_seq + len(intents) - 1
        counts = WriteResult(new=len(new_ids), updated=len(replaced), memberships=len(joined))
        return counts, touched, top
