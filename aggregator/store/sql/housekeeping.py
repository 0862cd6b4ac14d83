"""``SqlStore``'s housekeeping group: the once-per-cluster job claim, retention (prune),
the pruned ids, and a fetch asked for by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from aggregator.errors import SourceNotFoundError
from aggregator.store import PruneCounts
from aggregator.store.dbapi import chunks
from aggregator.store.schema import (
    categories,
    dropped_items,
    fetches,
    item_categories,
    item_sources,
    items,
    jobs,
    pruned_items,
    sources,
)
from aggregator.store.sql.base import SqlStoreBase


class HousekeepingMixin(SqlStoreBase):
    def claim_job(self, name: str, now: datetime, every: timedelta, owner: str) -> bool:
        values = {"next_run_at": now + every, "last_owner": owner, "last_started_at": now}
        with self._write() as conn:
            # READ COMMITTED re-checks the WHERE after a concurrent claim commits, so of
            # several processes due at once exactly one moves the job forward
            moved = conn.execute(
                update(jobs)
                .where(jobs.c.name == name, jobs.c.next_run_at <= now)
                .values(values)
                .returning(jobs.c.name)
            ).first()
            if moved is not None:
                return True
            # (rowcount of an INSERT .. ON CONFLICT DO NOTHING is -1 on psycopg: RETURNING)
            created = conn.execute(
                self._insert(jobs)
                .values(name=name, **values)
                .on_conflict_do_nothing()
                .returning(jobs.c.name)
            ).first()
            return created is not None

    def finish_job(self, name: str, result: str) -> None:
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.name == name).values(last_result=result))

    def prune(
        self,
        cutoffs: Mapping[str, datetime],
        default_cutoff: datetime | None,
        fetch_log_before: datetime,
        tombstones_before: datetime,
        now: datetime,
    ) -> PruneCounts:
        with self._write() as conn:
            slugs = [row[0] for row in conn.execute(select(categories.c.slug))]
            touched: list[str] = []
            losers: set[int] = set()
            removed = 0
            for slug in slugs:
                cutoff = cutoffs.get(slug, default_cutoff)
                if cutoff is None:
                    continue
                gone = conn.execute(
                    delete(item_categories)
                    .where(
                        item_categories.c.category_slug == slug,
                        item_categories.c.published_at < cutoff,
                    )
                    .returning(item_categories.c.item_id)
                ).all()
                if gone:
                    touched.append(slug)
                    removed += len(gone)
                    losers.update(row[0] for row in gone)
            kept: set[int] = set()
            orphans: list[tuple[int, str]] = []
            for chunk in chunks(sorted(losers)):
                kept.update(
                    row[0]
                    for row in conn.execute(
                        select(item_categories.c.item_id)
                        .where(item_categories.c.item_id.in_(chunk))
                        .distinct()
                    )
                )
            for chunk in chunks(sorted(losers - kept)):
                orphans += [
                    (row.item_id, row.stable_id)
                    for row in conn.execute(
                        select(items.c.item_id, items.c.stable_id).where(items.c.item_id.in_(chunk))
                    )
                ]
            for chunk in chunks(orphans):
                conn.execute(
                    self._insert(pruned_items)
                    .values([{"stable_id": sid, "pruned_at": now} for _, sid in chunk])
                    .on_conflict_do_nothing()
                )
                ids = [item_id for item_id, _ in chunk]
                conn.execute(delete(item_sources).where(item_sources.c.item_id.in_(ids)))
                conn.execute(delete(items).where(items.c.item_id.in_(ids)))
            for slug in touched:  # their feeds changed: new stamps, new ETags
                conn.execute(
                    update(categories)
                    .where(categories.c.slug == slug)
                    .values(last_seq=self._next_seq(conn))
                )
            log_rows = conn.execute(
                delete(fetches).where(fetches.c.started_at < fetch_log_before)
            ).rowcount
            forgotten = conn.execute(
                delete(pruned_items).where(pruned_items.c.pruned_at < tombstones_before)
            ).rowcount
            # a dropped item still listed after this long is processed once more
            forgotten += conn.execute(
                delete(dropped_items).where(dropped_items.c.dropped_at < tombstones_before)
            ).rowcount
        return PruneCounts(
            memberships=removed,
            items=len(orphans),
            fetch_log=log_rows,
            tombstones=forgotten,
        )

    def find_pruned(self, stable_ids: Sequence[str]) -> set[str]:
        with self._read_raw() as raw:
            return self.writer.pruned_among(raw, stable_ids)

    def request_fetch(self, source_id: str, now: datetime) -> None:
        with self._write() as conn:
            found = conn.execute(
                update(sources)
                .where(sources.c.source_id == source_id)
                .values(next_due_at=now, retired_at=None, gone_count=0)
            ).rowcount
        if not found:
            raise SourceNotFoundError(f"no source {source_id!r}")
