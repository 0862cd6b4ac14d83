"""``SqlStore``'s one-fetch group: what a fetch reads before it decides, and its write
(alone, or several in one transaction with a savepoint each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, select

from aggregator.errors import SourceNotFoundError, StoreError
from aggregator.model import CategoryRef, FetchOutcome, ItemIntent, KnownItem, SourceState
from aggregator.slug import identity_key
from aggregator.store import FetchKnowledge, FetchWrite, SourceUpdate, WriteCounts
from aggregator.store.dbapi import SEQ_COUNTER, Raw, chunks
from aggregator.store.schema import categories, sources
from aggregator.store.sql.base import CATEGORY_ROWS_SQL, SqlStoreBase, first_line
from aggregator.store.sql.rows import source_state


class FetchMixin(SqlStoreBase):
    def get_source_state(self, source_id: str) -> SourceState:
        with self._read() as conn:
            row = conn.execute(select(sources).where(sources.c.source_id == source_id)).first()
        if row is None:
            raise SourceNotFoundError(f"no source {source_id!r} in the database")
        return source_state(row)

    def find_known_items(self, source_id: str, stable_ids: Sequence[str]) -> dict[str, KnownItem]:
        with self._read_raw() as raw:
            return self.writer.known_among(raw, source_id, stable_ids)

    def find_fetch_knowledge(
        self, source_id: str, stable_ids: Sequence[str], *, with_dropped: bool = False
    ) -> FetchKnowledge:
        with self._read_raw() as raw:
            pruned = self.writer.pruned_among(raw, stable_ids)
            others = [stable_id for stable_id in stable_ids if stable_id not in pruned]
            known = self.writer.known_among(raw, source_id, others)
            registry = self._cached_registry()
            if registry is None:
                registry = self._remember_registry(raw.all(CATEGORY_ROWS_SQL, ()))
            dropped = self.writer.dropped_among(raw, source_id, others) if with_dropped else {}
        return FetchKnowledge(frozenset(pruned), known, registry, dropped)

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update_: SourceUpdate,
    ) -> WriteCounts:
        with self._write() as conn:
            raw = Raw(conn)
            if intents:
                self._lock_seq_first(raw)
            return self._apply_fetch_in(conn, raw, outcome, owner, intents, update_)

    def apply_fetches(self, jobs: Sequence[FetchWrite]) -> list[WriteCounts | StoreError]:
        """Several sources' fetches in one transaction, each inside its own savepoint: a
        source whose write fails is rolled back alone (its slot holds the error), the
        others commit together. Group commit for many small writes (store/batching.py)."""
        results: list[WriteCounts | StoreError] = []
        with self._write() as conn:
            raw = Raw(conn)
            if any(intents for _, _, intents, _ in jobs):
                self._lock_seq_first(raw)
            for job in jobs:
                # SAVEPOINT as SQL text: SQLAlchemy's begin_nested() cost 15% of the
                # writer's time in a cold pass, and the savepoint needs none of its help
                raw.run("SAVEPOINT fetch_write", ())
                try:
                    results.append(self._apply_fetch_in(conn, raw, *job))
                except self._db_errors as e:
                    raw.run("ROLLBACK TO SAVEPOINT fetch_write", ())
                    results.append(
                        StoreError(f"database write failed: {type(e).__name__}: {first_line(e)}")
                    )
                raw.run("RELEASE SAVEPOINT fetch_write", ())
        return results

    def rewrite_items(
        self, source_id: str, intents: Sequence[ItemIntent], now: datetime
    ) -> WriteCounts:
        if not intents:
            return WriteCounts(0, 0, 0)
        with self._write() as conn:
            raw = Raw(conn)
            self._lock_seq_first(raw)
            return self._write_items(conn, raw, source_id, intents, now)

    def _lock_seq_first(self, raw: Raw) -> None:
        """On PostgreSQL, lock the seq counter row before anything else an item write
        locks. Every item write locks it (reserving seqs) until commit, but a batch's
        second fetch may first insert a new category: another writer inserting the same
        one waits for this transaction, which waits for that writer's counter row, and
        PostgreSQL aborts one of them (DeadlockDetected, seen with two pass processes).
        Taking the counter first gives every writer the same lock order. SQLite has one
        writer at a time already."""
        if self.dialect != "sqlite":
            raw.one(self.writer.lock_seq, (SEQ_COUNTER,))

    def _apply_fetch_in(
        self,
        conn: Connection,
        raw: Raw,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update_: SourceUpdate,
    ) -> WriteCounts:
        """One fetch's write on ``conn``; ``raw`` is its DB-API cursor (one a transaction)."""
        counts = (
            self._write_items(conn, raw, outcome.source_id, intents, outcome.started_at)
            if intents
            else WriteCounts(0, 0, 0)
        )
        self.writer.record_fetch(raw, outcome, counts.new, counts.updated)
        self.writer.update_source(raw, outcome, owner, update_)
        return counts

    def _write_items(
        self,
        conn: Connection,
        raw: Raw,
        source_id: str,
        intents: Sequence[ItemIntent],
        now: datetime,
    ) -> WriteCounts:
        fresh = [
            ref
            for ref in {r.slug: r for i in intents for r in i.categories}.values()
            if ref.slug not in self._known_slugs
        ]
        if fresh:
            self.writer.ensure_categories(raw, fresh, now)
            moved = self._lost_categories(conn, fresh)
            if moved:
                intents = [_refile(intent, moved) for intent in intents]
            self._known_slugs.update(ref.slug for ref in fresh if ref.slug not in moved)
            self._registry_loaded_at = None  # someone else may own a slug: reload
        result, touched, top = self.writer.write(raw, source_id, intents, now)
        self.writer.stamp_categories(raw, touched, top)
        return WriteCounts(new=result.new, updated=result.updated, memberships=result.memberships)

    @staticmethod
    def _lost_categories(conn: Connection, fresh: Sequence[CategoryRef]) -> dict[str, str]:
        """New categories whose insert another writer beat: the same media name (identity
        key) was just filed under a slug of its own by a concurrent fetch. Their items go
        to that category instead (slug -> the existing slug)."""
        wanted = [ref.slug for ref in fresh]
        present = {
            row[0]
            for chunk in chunks(wanted)
            for row in conn.execute(select(categories.c.slug).where(categories.c.slug.in_(chunk)))
        }
        moved: dict[str, str] = {}
        for ref in fresh:
            if ref.slug in present or not ref.name:
                continue
            owner = conn.execute(
                select(categories.c.slug).where(categories.c.identity_key == identity_key(ref.name))
            ).scalar()
            if owner is not None:
                moved[ref.slug] = owner
        return moved


def _refile(intent: ItemIntent, moved: Mapping[str, str]) -> ItemIntent:
    """The intent with its categories renamed by ``moved`` (duplicates dropped)."""
    refs = {moved.get(ref.slug, ref.slug): ref for ref in intent.categories}
    return replace(intent, categories=tuple(replace(r, slug=s) for s, r in refs.items()))
