"""PostgreSQL: one store shared by processor replicas (``postgresql://user@host:port/db``).

Replicas may write and compact the same store at once: writes only insert, and compaction
claims a window's rows with ``DELETE ... RETURNING`` (see :mod:`~infersight.processor.storage.sql`).
The driver is psycopg 3, imported on first connection so the module loads without it.

Example (a server must be running)::

    store = open_storage("postgresql://infersight@db:5432/infersight", (60, 3600, 86400))
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from infersight.processor.storage.base import StorageError
from infersight.processor.storage.sql import SqlStorage

__all__ = ["PostgresStorage"]


class PostgresStorage(SqlStorage):
    begin = "BEGIN"
    id_type = "BIGSERIAL PRIMARY KEY"
    clock_sql = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    # a transaction-level advisory lock (released at COMMIT, so no connection holds it after):
    # concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL's catalog otherwise
    schema_lock_sql = "SELECT pg_advisory_xact_lock(7150001)"
    # Replicas' compactors take turns: claims stay exact without it (``rolled = 0`` is
    # re-checked after a wait), but two compactors locking overlapping rows in different
    # orders would deadlock and one of them fail.
    compaction_lock = "SELECT pg_advisory_xact_lock(7166818893260745983)"
    blob_type = "BYTEA"

    def _migrate_data_column(self, cur: Any) -> None:
        # Stores written before the binary form hold JSON text: the column becomes BYTEA (the
        # texts as UTF-8, which decode_window reads as JSON). Rewrites the table once, under the
        # schema lock, so replicas starting together convert it once.
        cur.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'stats' AND column_name = 'data'"
        )
        got = cur.fetchall()
        if got and got[0][0] == "text":
            cur.execute("ALTER TABLE stats ALTER COLUMN data TYPE BYTEA USING convert_to(data, 'UTF8')")

    def placeholders(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _insert_fresh(self, cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> list[int] | None:
        # one result per row, in the rows' order (psycopg 3.1+: executemany(returning=True))
        raw = cur.raw
        raw.executemany(self.placeholders(sql + " RETURNING id"), rows, returning=True)
        ids: list[int] = []
        while True:
            ids.append(int(raw.fetchone()[0]))
            if not raw.nextset():
                return ids

    def connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            safe = urlparse(self.url)._replace(netloc=urlparse(self.url).hostname or "").geturl()
            raise StorageError(f"cannot connect to PostgreSQL at {safe!r}: {exc}") from exc
