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
    media               DELETE FROM item_media (updated items), INSERT ... VALUES (..),(..)
    stamps              UPDATE categories SET last_seq ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

from aggregator.model import CategoryRef, FetchOutcome, IntentKind, ItemIntent, KnownItem
from aggregator.slug import identity_key

if TYPE_CHECKING:
    from aggregator.store import SourceUpdate

CHUNK = 500
SEQ_COUNTER = "item_seq"


@dataclass(frozen=True, slots=True)
class WriteResult:
    new: int
    updated: int
    memberships: int


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class Dialect:
    """Placeholders and datetimes for the DB-API driver in use."""

    def __init__(self, name: str) -> None:
        self.is_sqlite = name == "sqlite"

    def sql(self, text: str) -> str:
        return text if self.is_sqlite else text.replace("?", "%s")

    def marks(self, count: int) -> str:
        return ",".join("?" * count)

    def dt(self, value: datetime | None) -> Any:
        """What UTCDateTime would bind: naive UTC text on SQLite (SQLAlchemy's own storage
        format, "YYYY-MM-DD HH:MM:SS.ffffff", so its reads parse it), the aware value on
        PostgreSQL."""
        if value is None:
            return None
        if self.is_sqlite:
            # parsed dates are in UTC already: astimezone() only when they are not. The
            # "+00:00" is cut off the text: replace(tzinfo=None) cost twice the isoformat.
            utc = value if value.tzinfo is UTC else value.astimezone(UTC)
            return utc.isoformat(" ", "microseconds")[:-6]
        return value

    def read_dt(self, value: Any) -> datetime:
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_ITEM_COLUMNS = (
    "stable_id, seq, first_seq, title, link, guid, summary, content, author, published_at, "
    "published_offset_minutes, first_seen_at, updated_at, update_count, source_id"
)


class Raw:
    """The DB-API cursor under a SQLAlchemy connection, inside its transaction: the
    batched statements skip SQLAlchemy's per-statement work (events, result wrapping)."""

    def __init__(self, conn: Connection | None = None, cursor: Any = None) -> None:
        self.cursor = cursor or conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def one(self, sql: str, params: Sequence[Any]) -> Any:
        self.cursor.execute(sql, tuple(params))
        return self.cursor.fetchone()

    def all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        self.cursor.execute(sql, tuple(params))
        return list(self.cursor.fetchall())

    def run(self, sql: str, params: Sequence[Any]) -> None:
        self.cursor.execute(sql, tuple(params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(sql, rows)

    def insert(self, statement: RowsInsert, rows: Sequence[Sequence[Any]]) -> None:
        for part in chunks(rows, statement.rows_per_statement):
            self.cursor.execute(statement.sql(len(part)), list(chain.from_iterable(part)))


class RowsInsert:
    """An INSERT of many rows as one statement (``VALUES (..), (..), ...``).

    ``executemany`` steps the statement once per row, and the sqlite3 module lets go of
    the GIL around every step: the writer thread then waits for it again behind the
    parser threads, once per row, while it holds the database's one write lock. A cold
    pass's writer spent most of its time in those waits. One statement is one step.
    """

    def __init__(self, dialect: Dialect, head: str, columns: int, tail: str = "") -> None:
        self.head = head
        self.tail = tail
        self.row = "(" + dialect.marks(columns) + ")"
        self.dialect = dialect
        # SQLite binds at most 32,766 parameters (since 3.32), PostgreSQL 65,535
        self.rows_per_statement = max(1, min(CHUNK, 32_000 // columns))
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        text = self._sql.get(rows)
        if text is None:
            values = ",".join([self.row] * rows)
            text = self._sql[rows] = self.dialect.sql(f"{self.head} VALUES {values} {self.tail}")
        return text


def host_of(url: str) -> str:
    """The host a URL reaches, lowercased; "" for file: URLs (no politeness needed)."""
    return (urlsplit(url).hostname or "").lower()


_MEMBERS_OF = "SELECT item_id, category_slug FROM item_categories WHERE item_id"


class ItemWriter:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        d = dialect
        self.reserve = d.sql("UPDATE counters SET value = value + ? WHERE name = ? RETURNING value")
        self.lock_seq = d.sql("SELECT value FROM counters WHERE name = ? FOR UPDATE")
        self.insert_item = RowsInsert(
            d, f"INSERT INTO items ({_ITEM_COLUMNS})", 15, "ON CONFLICT (stable_id) DO NOTHING"
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
        another source stored it) and the categories it is in."""
        head = (
            "SELECT i.item_id, i.stable_id, s.content_sha256 FROM items i "
            "LEFT JOIN item_sources s ON s.item_id = i.item_id AND s.source_id = ? "
            "WHERE i.stable_id"
        )
        found = {
            stable_id: (item_id, sha)
            for item_id, stable_id, sha in self._select_in(raw, head, stable_ids, (source_id,))
        }
        slugs: dict[int, set[str]] = {}
        for item_id, slug in self._select_in(
            raw, _MEMBERS_OF, [item_id for item_id, _ in found.values()]
        ):
            slugs.setdefault(item_id, set()).add(slug)
        return {
            stable_id: KnownItem(stable_id, sha, frozenset(slugs.get(item_id, ())))
            for stable_id, (item_id, sha) in found.items()
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
        self, raw: Raw, intent: ItemIntent, seq: int, now: datetime
    ) -> tuple[int, datetime, list[str]] | None:
        sets = [
            "title = ?",
            "link = ?",
            "guid = ?",
            "summary = ?",
            "author = ?",
            "seq = ?",
            "updated_at = ?",
            "update_count = update_count + 1",
        ]
        values: list[Any] = [
            intent.title,
            intent.link,
            intent.guid,
            intent.summary,
            intent.author,
            seq,
            self.d.dt(now),
        ]
        if not (intent.is_content_external and intent.content is None):
            sets.append("content = ?")
            values.append(intent.content)
        if intent.is_published_firm:
            sets += ["published_at = ?", "published_offset_minutes = ?"]
            values += [self.d.dt(intent.published_at), intent.published_offset_minutes]
        sql = self.d.sql(
            f"UPDATE items SET {', '.join(sets)} WHERE stable_id = ? "
            "RETURNING item_id, published_at"
        )
        row = raw.one(sql, (*values, intent.stable_id))
        if row is None:
            return None
        published = self.d.read_dt(row[1])
        moved = raw.all(self.move_members, (self.d.dt(published), row[0]))
        return int(row[0]), published, [str(r[0]) for r in moved]

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
                )
                for i in intents
                if i.kind is IntentKind.NEW
            ],
        )
        rows = self._lookup(raw, [i.stable_id for i in intents])
        # inserted now: the stored seq is the one this write gave it. A NEW intent that
        # found the id taken (another worker inserted it first) becomes a membership.
        new_ids = {sid for sid in wanted_new if sid in rows and rows[sid][1] == seq_of[sid]}
        item_ids = {sid: row[0] for sid, row in rows.items()}
        published = {sid: row[2] for sid, row in rows.items()}
        touched: set[str] = set()
        updated = 0
        replaced: list[int] = []  # updated items: their media are written again
        for intent in intents:
            if intent.kind is not IntentKind.UPDATED or intent.stable_id not in rows:
                continue
            changed = self._update(raw, intent, seq_of[intent.stable_id], now)
            if changed is not None:
                updated += 1
                replaced.append(changed[0])
                published[intent.stable_id] = dt(changed[1])
                touched.update(changed[2])
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
                if intent.stable_id not in new_ids and intent.kind is not IntentKind.UPDATED:
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
        self._write_media(raw, intents, new_ids, replaced, item_ids)
        top = first_seq + len(intents) - 1
        return WriteResult(new=len(new_ids), updated=updated, memberships=len(joined)), touched, top
