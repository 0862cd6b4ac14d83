"""``SqlStore``'s schedule group: leases on due sources (claims, within per-host limits),
their renewal and release, and due times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from aggregator.model import SourceState
from aggregator.store import HostLimits
from aggregator.store.dbapi import chunks
from aggregator.store.schema import fetches, sources
from aggregator.store.sql.base import SqlStoreBase
from aggregator.store.sql.rows import source_state

_CLAIM_LOCK_KEY = 7_270_315_002  # pg_advisory_xact_lock for claims under per-host limits


class ScheduleMixin(SqlStoreBase):
    def _claim(
        self,
        conn: Connection,
        where: Any,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int | None,
    ) -> list[SourceState]:
        free = or_(sources.c.lease_until.is_(None), sources.c.lease_until < now)
        pick = (
            select(sources.c.source_id)
            .where(sources.c.enabled.is_(True), free, where)
            .order_by(sources.c.next_due_at, sources.c.source_id)
            .with_for_update(skip_locked=True)
        )
        if limit is not None:
            pick = pick.limit(limit)
        return self._lease(conn, [row[0] for row in conn.execute(pick)], now, owner, lease)

    @staticmethod
    def _lease(
        conn: Connection, chosen: Sequence[str], now: datetime, owner: str, lease: timedelta
    ) -> list[SourceState]:
        if not chosen:
            return []
        rows = conn.execute(
            update(sources)
            .where(sources.c.source_id.in_(chosen))
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(*sources.c)
        ).all()
        return sorted(
            (source_state(row) for row in rows), key=lambda s: (s.next_due_at, s.source_id)
        )

    def claim_due_sources(
        self,
        now: datetime,
        owner: str,
        limit: int,
        lease: timedelta,
        hosts: HostLimits = HostLimits(),  # noqa: B008 (frozen)
    ) -> list[SourceState]:
        if limit <= 0:
            return []
        # retired sources (repeated 410 Gone) are fetched only by hand (claim_sources)
        due = and_(sources.c.next_due_at <= now, sources.c.retired_at.is_(None))
        with self._write() as conn:
            if not hosts.active:
                return self._claim(conn, due, now, owner, lease, limit)
            return self._claim_politely(conn, due, now, owner, lease, limit, hosts)

    def _claim_politely(
        self,
        conn: Connection,
        due: Any,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int,
        hosts: HostLimits,
    ) -> list[SourceState]:
        """Claims that keep each host under its limits, counted over the whole cluster:
        live leases are its fetches in flight, and the fetch log plus those leases its
        fetches of the last minute. Counting then claiming must not interleave between
        processes, so on PostgreSQL the claim takes a transaction-scoped advisory lock
        (SQLite's BEGIN IMMEDIATE already serializes writers)."""
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK_KEY)))
        free = or_(sources.c.lease_until.is_(None), sources.c.lease_until < now)
        candidates = conn.execute(
            select(sources.c.source_id, sources.c.host)
            .where(sources.c.enabled.is_(True), free, due)
            .order_by(sources.c.next_due_at, sources.c.source_id)
            .limit(limit * 4 + 32)  # room to pass over sources of hosts at their limit
            .with_for_update(skip_locked=True)
        ).all()
        names = sorted({row.host for row in candidates if row.host})
        in_flight: dict[str, int] = dict.fromkeys(names, 0)
        recent: dict[str, int] = dict.fromkeys(names, 0)
        for chunk in chunks(names):
            for host, count in conn.execute(
                select(sources.c.host, func.count())
                .where(sources.c.host.in_(chunk), sources.c.lease_until > now)
                .group_by(sources.c.host)
            ):
                in_flight[host] = int(count)
            if hosts.max_per_minute is not None:
                for host, count in conn.execute(
                    select(sources.c.host, func.count())
                    .select_from(fetches.join(sources, fetches.c.source_id == sources.c.source_id))
                    .where(
                        sources.c.host.in_(chunk),
                        fetches.c.started_at >= now - timedelta(minutes=1),
                    )
                    .group_by(sources.c.host)
                ):
                    recent[host] = int(count)
        chosen: list[str] = []
        for row in candidates:
            if len(chosen) >= limit:
                break
            host = row.host
            if host:
                if hosts.max_concurrent is not None and in_flight[host] >= hosts.max_concurrent:
                    continue
                started = recent[host] + in_flight[host]
                if hosts.max_per_minute is not None and started >= hosts.max_per_minute:
                    continue
                in_flight[host] += 1
            chosen.append(row.source_id)
        return self._lease(conn, chosen, now, owner, lease)

    def renew_leases(self, source_ids: Sequence[str], owner: str, until: datetime) -> int:
        renewed = 0
        with self._write() as conn:
            for chunk in chunks(list(source_ids)):
                renewed += conn.execute(
                    update(sources)
                    .where(sources.c.source_id.in_(chunk), sources.c.lease_owner == owner)
                    .values(lease_until=until)
                ).rowcount
        return renewed

    def claim_sources(
        self, source_ids: Sequence[str], now: datetime, owner: str, lease: timedelta
    ) -> list[SourceState]:
        claimed: list[SourceState] = []
        with self._write() as conn:
            for chunk in chunks(list(source_ids)):
                claimed += self._claim(
                    conn, sources.c.source_id.in_(chunk), now, owner, lease, None
                )
        return claimed

    def release_lease(self, source_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.source_id == source_id, sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def list_lease_owners(self, now: datetime) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                select(sources.c.lease_owner)
                .where(sources.c.lease_owner.is_not(None), sources.c.lease_until >= now)
                .distinct()
            )
            return [row[0] for row in rows]

    def release_leases(self, owner: str) -> int:
        with self._write() as conn:
            result = conn.execute(
                update(sources)
                .where(sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
            return int(result.rowcount)

    def list_overdue(self, now: datetime) -> list[tuple[str, datetime]]:
        with self._read() as conn:
            rows = conn.execute(
                select(sources.c.source_id, sources.c.next_due_at).where(
                    sources.c.enabled.is_(True),
                    sources.c.retired_at.is_(None),
                    sources.c.last_fetch_at.is_not(None),
                    sources.c.next_due_at < now,
                    or_(sources.c.lease_until.is_(None), sources.c.lease_until < now),
                )
            )
            return [(row.source_id, row.next_due_at) for row in rows]

    def find_oldest_unclaimed_due(self, now: datetime) -> datetime | None:
        with self._read() as conn:
            oldest = conn.execute(
                select(func.min(sources.c.next_due_at)).where(
                    sources.c.enabled.is_(True),
                    sources.c.retired_at.is_(None),
                    sources.c.next_due_at < now,
                    or_(sources.c.lease_until.is_(None), sources.c.lease_until < now),
                )
            ).scalar_one_or_none()
        return oldest  # min() keeps the column type: UTC-aware

    def set_due_times(self, due: Mapping[str, datetime]) -> None:
        with self._write() as conn:
            for source_id, moment in due.items():
                conn.execute(
                    update(sources)
                    .where(sources.c.source_id == source_id)
                    .values(next_due_at=moment)
                )
