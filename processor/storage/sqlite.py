"""SQLite, the default engine: one file beside the processor (WAL, ``synchronous=FULL``).

URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``
(tests; reads then share the write connection, as each connection has its own database).

Example:
    >>> st = SqliteStorage("sqlite:///:memory:", (60, 3600))
    >>> st.models()
    []
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import unquote

from infersight.processor.storage.base import StorageError
from infersight.processor.storage.sql import SqlStorage

__all__ = ["SqliteStorage", "sqlite_path"]


def sqlite_path(url: str) -> str:
    """The file a ``sqlite://`` URL names.

    >>> sqlite_path("sqlite:///rel.db"), sqlite_path("sqlite:////abs.db"), sqlite_path("sqlite://")
    ('rel.db', '/abs.db', ':memory:')
    """
    path = url[len("sqlite://") :]
    if path.startswith("/"):
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    return unquote(path) or ":memory:"


class SqliteStorage(SqlStorage):
    # IMMEDIATE takes the write lock at BEGIN, so two writers wait rather than fail mid-way.
    begin = "BEGIN IMMEDIATE"
    id_type = "INTEGER PRIMARY KEY AUTOINCREMENT"

    @property
    def shares_connection(self) -> bool:
        return sqlite_path(self.url) == ":memory:"

    def _insert_fresh(self, cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> list[int] | None:
        cur.executemany(sql, rows)
        # The write lock is held from BEGIN IMMEDIATE to COMMIT and the key is AUTOINCREMENT:
        # the rows of one executemany take consecutive ids, the last of them last_insert_rowid().
        cur.execute("SELECT last_insert_rowid()")
        last = int(cur.fetchall()[0][0])
        return list(range(last - len(rows) + 1, last + 1))

    def connect(self) -> Any:
        path = sqlite_path(self.url)
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            if path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an acknowledged batch survives power loss
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {path!r}: {exc}") from exc
        return conn
