"""Durable windowed storage behind one small interface (:class:`Storage`).

============  =====================================================================
module        what it holds
============  =====================================================================
``base``      the interface and the records it takes (``WriteBatch``, ``WindowKey``)
``codec``     a window's stored text (JSON), the same for every engine
``batches``   many series' windows of one model and window in one row (exporter requests)
``sql``       the SQL both engines share (schema, writes, compaction, queries)
``sqlite``    SQLite: connection, transaction start, key type (the default engine)
``postgres``  PostgreSQL: connection, placeholders, key type (shared by replicas)
============  =====================================================================

A third engine is one module: a :class:`~infersight.processor.storage.sql.SqlStorage` subclass
that sets what differs (or a :class:`Storage` of its own, for a store that does not speak SQL),
and its URL scheme in ``ENGINES`` below.

Example:
    >>> st = open_storage("sqlite:///:memory:", window_sizes=(60, 3600))
    >>> st.models()
    []
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from infersight.processor.storage.base import (
    FEATURE,
    MODEL,
    OUTPUT,
    Feedback,
    Prediction,
    Storage,
    StorageError,
    WindowKey,
    WriteBatch,
    cover_range,
)
from infersight.processor.storage.postgres import PostgresStorage
from infersight.processor.storage.sqlite import SqliteStorage

__all__ = [
    "Storage",
    "StorageError",
    "WriteBatch",
    "WindowKey",
    "Prediction",
    "Feedback",
    "FEATURE",
    "OUTPUT",
    "MODEL",
    "cover_range",
    "open_storage",
    "ENGINES",
]

# URL scheme -> engine
ENGINES: dict[str, Callable[..., Storage]] = {
    "sqlite": SqliteStorage,
    "postgresql": PostgresStorage,
    "postgres": PostgresStorage,
}


def open_storage(url: str, window_sizes: Sequence[int] = (60, 3600, 86400), **kw: Any) -> Storage:
    """Open (and create) the store at ``url``: ``sqlite:///file.db`` or ``postgresql://...``."""
    scheme, sep, _ = url.partition("://")
    engine = ENGINES.get(scheme) if sep else None
    if engine is None:
        raise StorageError(f"storage URL {url!r} is neither sqlite:///... nor postgresql://...")
    return engine(url, window_sizes, **kw)
