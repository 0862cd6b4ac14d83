"""The DB-API layer under the batched writer and the SQL store: placeholders and dates
per dialect, the raw cursor of a SQLAlchemy connection, multi-row INSERTs, chunking of
long IN lists. Holds no business logic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

CHUNK = 500
SEQ_COUNTER = "item_seq"


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
