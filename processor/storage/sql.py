"""The SQL both engines share: schema, append-and-compact writes, roll-ups, range queries.

Why append-and-compact rather than update-in-place: each batch *inserts* its window rows, so
writers never read-modify-write a row another replica may be writing; a query merges whatever
rows a window has, and :meth:`SqlStorage.compact` later folds a window's rows into one (a
``DELETE ... RETURNING`` claims them atomically, so two compactors cannot both fold the same
rows).

Roll-up windows (e.g. 1 h, 1 d) are built by compaction, not at ingest: a batch writes base
windows only, marked ``rolled = 0``; compaction adds exactly those rows to their roll-up
windows and marks the folded base row ``rolled = 1``, in one transaction. A range query reads
the roll-up windows that fit plus the base rows not yet rolled into them, so answers are exact
at every moment, and a whole day is still a handful of rows once compaction has run.

Where a request holds many packed base windows of one model and window (an exporter sends all
of a model's series each interval), they are one row of ``batches`` (:mod:`~.batches`): every
reader of base windows splits such a row back into its windows, and compaction claims batch
rows by model and time range and adds their windows to each series' roll-ups, so answers are
those of rows of their own, for one insert and one claim per model-window instead of per point.

A batch, its request digests (for retry de-duplication) and the cumulative-stream state are
written in one transaction: the receiver acknowledges only after that commit.

What differs between engines is a few hooks, each a small method or attribute an engine module
sets: how to connect (and which errors mean "cannot open"), the placeholder style
(:meth:`SqlStorage.placeholders`), how a transaction that writes begins (``begin``), the
auto-increment key's type (``id_type``), insert-or-skip / insert-or-update
(:meth:`SqlStorage.upsert`), and whether reads may share the write connection. SQL is written
once here with ``?`` placeholders.

Example:
    >>> from infersight.processor.storage.sqlite import SqliteStorage
    >>> SqliteStorage("sqlite:///:memory:", (60,)).upsert("t", ("k", "v"), ("k",), ("v",))
    'INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import json
import operator
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from infersight.processor.storage.base import (
    Lease,
    LeaseLost,
    Record,
    Storage,
    TraceItem,
    WindowKey,
    WriteBatch,
    cover_range,
)
from infersight.processor.storage.batches import (
    find_series,
    names_text,
    pack_batch,
    read_names,
    split_batch,
)
from infersight.processor.storage.codec import decode_window, pack_windows
from infersight.processor.storage.merge import StoredRows
from infersight.stats.windows import WindowStats

__all__ = ["SqlStorage"]

I64 = npt.NDArray[np.int64]

_RECORD_JSON = json.JSONEncoder(allow_nan=False)


_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS stats (
        id {id},
        model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
        size INTEGER NOT NULL, start BIGINT NOT NULL, data {blob} NOT NULL,
        rolled INTEGER NOT NULL DEFAULT 1)""",
    # a model's windows by time: one batch's rows land in one place per model, so a commit
    # writes a few index pages, not one per series (stats_series, keyed by series first, made
    # every commit rewrite a leaf page per series written: ~7 us a point in the exporter pattern)
    "CREATE INDEX IF NOT EXISTS stats_window ON stats (model, size, start, role, name)",
    "DROP INDEX IF EXISTS stats_series",
    # expiry finds old windows by age, not by scanning the table each maintenance pass. On
    # expressions, so only expiry's queries (written ``size + 0 = ? AND start + 0 < ?``) can
    # use it: a plain (size, start) index was picked by SQLite for per-model queries of a time
    # range, reading all models' rows in it (an evaluation pass over 100 models took 2x)
    "DROP INDEX IF EXISTS stats_age",
    "CREATE INDEX IF NOT EXISTS stats_expiry ON stats ((size + 0), (start + 0))",
    # base windows of many series of one model and window in one row (storage.batches): what
    # the writer stores for an exporter's request, one insert and one claim per model-window
    # instead of per point. ``n`` is how many windows the row holds.
    """CREATE TABLE IF NOT EXISTS batches (
        id {id}, model TEXT NOT NULL, size INTEGER NOT NULL, start BIGINT NOT NULL, n INTEGER NOT NULL,
        names TEXT NOT NULL, data {blob} NOT NULL, rolled INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS batches_window ON batches (model, size, start)",
    "CREATE INDEX IF NOT EXISTS batches_expiry ON batches ((size + 0), (start + 0))",
    """CREATE TABLE IF NOT EXISTS predictions (
        model TEXT NOT NULL, request_id TEXT NOT NULL, version TEXT NOT NULL, time_ns BIGINT NOT NULL,
        trace_id TEXT, span_id TEXT, inputs TEXT, outputs TEXT, truncated INTEGER NOT NULL,
        PRIMARY KEY (model, request_id))""",
    "CREATE INDEX IF NOT EXISTS predictions_time ON predictions (model, time_ns)",
    """CREATE TABLE IF NOT EXISTS feedback (
        model TEXT NOT NULL, request_id TEXT NOT NULL, version TEXT NOT NULL, time_ns BIGINT NOT NULL,
        actual TEXT NOT NULL, PRIMARY KEY (model, request_id))""",
    """CREATE TABLE IF NOT EXISTS outcomes (
        model TEXT NOT NULL, request_id TEXT NOT NULL, version TEXT NOT NULL, time_ns BIGINT NOT NULL,
        trace_id TEXT, span_id TEXT, prediction TEXT, nrows INTEGER NOT NULL, truncated INTEGER NOT NULL,
        PRIMARY KEY (model, request_id))""",
    "CREATE INDEX IF NOT EXISTS outcomes_time ON outcomes (model, time_ns)",
    """CREATE TABLE IF NOT EXISTS feedback_attributes (
        model TEXT NOT NULL, request_id TEXT NOT NULL, attributes TEXT NOT NULL, PRIMARY KEY (model, request_id))""",
    "CREATE TABLE IF NOT EXISTS ingested (digest TEXT PRIMARY KEY, at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS streams (key TEXT PRIMARY KEY, state TEXT NOT NULL, at BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
        body TEXT NOT NULL, PRIMARY KEY (kind, key))""",
    "CREATE INDEX IF NOT EXISTS records_time ON records (kind, model, time)",
    # who does shared work (evaluation of a model) among replicas of this store: Storage.acquire_lease
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch BIGINT NOT NULL, expires DOUBLE PRECISION NOT NULL)""",
    # spans and log records of requests, for the request view (bounded: expire_trace_items)
    """CREATE TABLE IF NOT EXISTS trace_items (
        trace_id TEXT NOT NULL, item_id TEXT NOT NULL, kind TEXT NOT NULL, model TEXT NOT NULL,
        request_id TEXT NOT NULL, time_ns BIGINT NOT NULL, flagged INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (trace_id, item_id))""",
    "CREATE INDEX IF NOT EXISTS trace_items_request ON trace_items (request_id)",
    "CREATE INDEX IF NOT EXISTS trace_items_time ON trace_items (time_ns)",
]

# a batch's base windows, not yet rolled up: a row per window, or a row per model and window
_INSERT_FRESH = "INSERT INTO stats (model, version, role, name, size, start, data, rolled) VALUES (?,?,?,?,?,?,?,0)"
_INSERT_BATCH = "INSERT INTO batches (model, size, start, n, names, data, rolled) VALUES (?,?,?,?,?,?,0)"
# the ids compaction gives, in memory only, to the windows of a claimed batch row: above every
# row id, in the order of the batch rows' ids, then of the windows in a row
_BATCH_IDS = 1 << 48
_BATCH_STRIDE = 1 << 20

_TRACE_ITEM_COLUMNS = ("trace_id", "item_id", "kind", "model", "request_id", "time_ns", "flagged", "body")


_OUTCOME_COLUMNS = (
    "model",
    "request_id",
    "version",
    "time_ns",
    "trace_id",
    "span_id",
    "prediction",
    "nrows",
    "truncated",
)

# predictions' columns in table order
_PREDICTION_COLUMNS = (
    "model",
    "request_id",
    "version",
    "time_ns",
    "trace_id",
    "span_id",
    "inputs",
    "outputs",
    "truncated",
)


class SqlStorage(Storage):
    """The storage interface over a DB-API connection; an engine module subclasses it.

    Thread use: one lock serialises writes (ingest batches, compaction, expiry); reads use a
    second connection under their own lock, so queries never wait for a commit in WAL mode.
    """

    # -- what an engine sets ----------------------------------------------------------------

    begin = "BEGIN"  # starts a transaction that writes
    # run first in each compaction transaction, so compactors on one store take turns
    # (PostgreSQL: a transaction-scoped advisory lock); None where the engine serialises writers
    compaction_lock: str | None = None
    id_type: str  # the ``stats`` table's auto-increment key, e.g. ``BIGSERIAL PRIMARY KEY``
    # the store's clock in Unix seconds: leases expire by it, so replicas on hosts whose clocks
    # disagree still agree on when a lease ran out
    clock_sql = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    # taken first in the transaction that creates the schema, so replicas starting together on
    # one new database do not race in CREATE TABLE (SQLite: BEGIN IMMEDIATE serialises already)
    schema_lock_sql: str | None = None
    # how many rows just written compaction may take without reading them back (~0.2 kB each)
    handover_limit = 250_000
    # the ``stats.data`` column's type: a window's stored bytes (codec.pack_windows)
    blob_type = "BLOB"
    # a request's packed base windows of one model and window are stored as one batch row
    # (storage.batches) when there are at least this many, at most ``batch_max`` a row
    batch_min = 8
    batch_max = 4096

    @abc.abstractmethod
    def connect(self) -> Any:
        """A new autocommit DB-API connection; :class:`StorageError` naming the store if not."""

    def placeholders(self, sql: str) -> str:
        """``sql`` (written with ``?``) in the driver's placeholder style."""
        return sql

    @property
    def shares_connection(self) -> bool:
        """Whether reads must use the write connection (e.g. an in-memory database)."""
        return False

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str] = ()) -> str:
        """An INSERT of ``columns`` that, on a duplicate ``key``, sets the ``update`` columns
        to the new row's values, or skips the row when ``update`` is empty. ``ON CONFLICT`` is
        what SQLite (3.24+) and PostgreSQL both speak; an engine that does not overrides this."""
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO "
        if not update:
            return sql + "NOTHING"
        return sql + "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)

    # -- shared -------------------------------------------------------------------------------

    def __init__(self, url: str, window_sizes: Sequence[int], *, feedback_ttl: float = 7 * 86400) -> None:
        self.url = url
        self.window_sizes = tuple(window_sizes)
        self.feedback_ttl = feedback_ttl
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._fence = threading.local()  # the lease this thread's writes are fenced by (fenced())
        # compaction's memory: spans of base windows held until the data moves past them
        self._held: set[tuple[Any, ...]] = set()  # _Span fields
        self._held_lock = threading.Lock()
        self._watermark = 0
        # rows written here, for compaction: {(model, version, role, name, roll-up start):
        # {row id: stored bytes}}; guarded by the write lock
        self._handover: dict[tuple[Any, ...], dict[int, bytes]] = {}
        self._handover_rows = 0
        # batch rows written here: {(model, roll-up start): {batch id: (start, names, data)}},
        # and how many windows they hold (counted against ``handover_limit`` with the rows)
        self._handover_batches: dict[tuple[str, int], dict[int, tuple[int, str, bytes]]] = {}
        self._handover_batch_rows = 0
        self._w = self.connect()
        self._r = self._w if self.shares_connection else self.connect()
        if self.shares_connection:
            self._rlock = self._wlock
        with self._wlock, self._tx(self._w, fence=False) as cur:
            if self.schema_lock_sql:
                cur.execute(self.schema_lock_sql)
            for stmt in _SCHEMA:
                cur.execute(stmt.format(id=self.id_type, blob=self.blob_type))
            # Stores made before roll-ups moved to compaction wrote them at ingest: their rows
            # count as rolled (the column's default), so nothing is rolled up twice.
            cur.execute("SELECT * FROM stats WHERE 1=0")
            if "rolled" not in [d[0] for d in cur.description]:
                cur.execute("ALTER TABLE stats ADD COLUMN rolled INTEGER NOT NULL DEFAULT 1")
            self._migrate_data_column(cur)

    def _migrate_data_column(self, cur: Any) -> None:
        """Make an older store's ``stats.data`` column hold bytes (it held JSON text). SQLite
        keeps a BLOB as it is in a TEXT column, so nothing changes there; an engine whose
        text columns cannot hold bytes converts the column here."""

    class _Tx:
        def __init__(self, store: SqlStorage, conn: Any, fence: bool = True) -> None:
            self.store, self.conn, self.fence = store, conn, fence

        def __enter__(self) -> Any:
            self.cur = self.conn.cursor()
            self.cur.execute(self.store.begin)
            cur = _Cursor(self.cur, self.store.placeholders)
            held = getattr(self.store._fence, "held", None) if self.fence else None
            if held is not None:
                try:
                    self.store._check_fence(cur, *held)
                except BaseException:
                    try:
                        self.cur.execute("ROLLBACK")
                    finally:
                        self.cur.close()
                    raise
            return cur

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                self.cur.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.cur.close()

    def _tx(self, conn: Any, fence: bool = True) -> SqlStorage._Tx:
        return SqlStorage._Tx(self, conn, fence)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._rlock:
            cur = self._r.cursor()
            try:
                cur.execute(self.placeholders(sql), tuple(params))
                return list(cur.fetchall())
            finally:
                cur.close()

    def close(self) -> None:
        with self._wlock:
            self._w.close()
            if self._r is not self._w:
                self._r.close()

    def ping(self) -> bool:
        try:
            self._read("SELECT 1")
            return True
        except Exception:
            return False

    # -- writing --------------------------------------------------------------------------

    def seen(self, digests: Sequence[str]) -> set[str]:
        """Which request digests were already stored (a retry of an acknowledged-then-lost reply)."""
        if not digests:
            return set()
        marks = ",".join("?" * len(digests))
        return {r[0] for r in self._read(f"SELECT digest FROM ingested WHERE digest IN ({marks})", digests)}

    def load_streams(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._read("SELECT key, state FROM streams")]

    def write(self, batch: WriteBatch, now: float | None = None) -> None:
        """Store ``batch`` in one transaction; returns once it is committed.

        ``batch.windows`` holds base windows only: roll-ups are the store's job (compaction).
        """
        at = int(now if now is not None else time.time())
        base = self.window_sizes[0]
        wrong = [k for k in (*batch.windows, *batch.packed) if k.size != base]
        if wrong:
            raise ValueError(
                f"write() takes base windows ({base} s) only; got a {wrong[0].size} s window "
                f"({wrong[0]}): roll-ups are built by compact()"
            )
        both = batch.windows.keys() & batch.packed.keys()
        if both:
            raise ValueError(
                f"write() takes a window in WriteBatch.windows or in WriteBatch.packed, not both; got {min(both)} "
                "in both: merge them first"
            )
        brows, loose = self._batch_rows(batch.packed)
        keys = [*batch.windows, *(k for k, _ in loose)]
        data = [*pack_windows(list(batch.windows.values())), *(d for _, d in loose)]
        rows = [(*k, d) for k, d in zip(keys, data)]
        with self._wlock:
            ids, bids = self._write_tx(batch, rows, brows, at)
            # committed: hand compaction the rows it would read back
            if ids is not None:
                self._hand_over(keys, ids, data)
            if bids is not None:
                self._hand_over_batches(brows, bids)

    def _batch_rows(
        self, packed: dict[WindowKey, bytes]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[WindowKey, bytes]]]:
        """``packed`` as batch rows (model, size, start, n, names, data) where a model's window
        has at least ``batch_min`` of them, and the windows left to a row each."""
        # grouped by a sort in C (stable: a model-window's series keep the request's order)
        by_window = operator.itemgetter(0, 5)
        brows: list[tuple[Any, ...]] = []
        loose: list[tuple[WindowKey, bytes]] = []
        base = self.window_sizes[0]
        for (model, start), group in itertools.groupby(sorted(packed, key=by_window), by_window):
            keys = list(group)
            if len(keys) < self.batch_min:
                loose.extend([(k, packed[k]) for k in keys])
                continue
            for part in _chunks(keys, self.batch_max):
                names = names_text(tuple(map(_SERIES_OF, part)))
                brows.append((model, base, start, len(part), names, pack_batch(list(map(packed.__getitem__, part)))))
        return brows, loose

    def _insert_fresh(self, cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> list[int] | None:
        """Insert fresh rows (``sql``: ``_INSERT_FRESH`` or ``_INSERT_BATCH``); their ids in
        order, or ``None`` where the engine cannot tell (compaction then reads those rows)."""
        cur.executemany(sql, rows)
        return None

    def _hand_over_batches(self, brows: list[tuple[Any, ...]], bids: list[int]) -> None:
        """Keep batch rows just committed for compaction, by model and roll-up window (as
        :meth:`_hand_over` keeps rows), within the same ``handover_limit``."""
        rollups = self.window_sizes[1:]
        if not rollups:
            return
        first = rollups[0]
        for (model, _, start, n, names, data), bid in zip(brows, bids):
            if self._handover_rows + self._handover_batch_rows + n > self.handover_limit:
                break
            self._handover_batches.setdefault((model, start - start % first), {})[bid] = (start, names, data)
            self._handover_batch_rows += n

    def _hand_over(self, keys: list[WindowKey], ids: list[int], data: list[bytes]) -> None:
        """Keep the stored bytes of rows just committed for compaction (by series' roll-up
        window, then row id: a row's content never changes under its id), up to
        ``handover_limit`` rows; beyond that, compaction reads the rows back as before."""
        rollups = self.window_sizes[1:]
        if not rollups:
            return
        first = rollups[0]
        room = self.handover_limit - self._handover_rows - self._handover_batch_rows
        cache = self._handover
        for key, row_id, row in zip(keys, ids, data):
            if room <= 0:
                break
            model, version, role, name, _, start = key
            span = (model, version, role, name, start - start % first)
            got = cache.get(span)
            if got is None:
                cache[span] = {row_id: row}
            else:
                got[row_id] = row
            room -= 1
        self._handover_rows = self.handover_limit - self._handover_batch_rows - room

    def _write_tx(
        self, batch: WriteBatch, rows: list[tuple[Any, ...]], brows: list[tuple[Any, ...]], at: int
    ) -> tuple[list[int] | None, list[int] | None]:
        ids: list[int] | None = None
        bids: list[int] | None = None
        with self._tx(self._w) as cur:
            if rows:
                ids = self._insert_fresh(cur, _INSERT_FRESH, rows)
            if brows:
                bids = self._insert_fresh(cur, _INSERT_BATCH, brows)
            if batch.predictions:
                cur.executemany(
                    self.upsert("predictions", _PREDICTION_COLUMNS, ("model", "request_id")),
                    [
                        (
                            p.model,
                            p.request_id,
                            p.version,
                            p.time_ns,
                            p.trace_id,
                            p.span_id,
                            p.inputs,
                            p.outputs,
                            int(p.truncated),
                        )
                        for p in batch.predictions
                    ],
                )
            if batch.feedback:
                cur.executemany(
                    self.upsert(
                        "feedback",
                        ("model", "request_id", "version", "time_ns", "actual"),
                        ("model", "request_id"),
                        ("version", "time_ns", "actual"),
                    ),
                    [(f.model, f.request_id, f.version, f.time_ns, f.actual) for f in batch.feedback],
                )
            if batch.outcomes:
                cur.executemany(
                    self.upsert("outcomes", _OUTCOME_COLUMNS, ("model", "request_id")),
                    [
                        (
                            o.model,
                            o.request_id,
                            o.version,
                            o.time_ns,
                            o.trace_id,
                            o.span_id,
                            o.prediction,
                            o.rows,
                            int(o.truncated),
                        )
                        for o in batch.outcomes
                    ],
                )
            labelled = [f for f in batch.feedback if f.attributes]
            if labelled:
                cur.executemany(
                    self.upsert(
                        "feedback_attributes",
                        ("model", "request_id", "attributes"),
                        ("model", "request_id"),
                        ("attributes",),
                    ),
                    [(f.model, f.request_id, f.attributes) for f in labelled],
                )
            if batch.digests:
                cur.executemany(
                    self.upsert("ingested", ("digest", "at"), ("digest",)),
                    [(d, at) for d in batch.digests],
                )
            if batch.streams:
                cur.executemany(
                    self.upsert("streams", ("key", "state", "at"), ("key",), ("state", "at")),
                    [(k, v, at) for k, v in batch.streams.items()],
                )
            if batch.trace_items:
                self._write_trace_items(cur, batch.trace_items)
        return ids, bids

    def compact(self, keys: Iterable[WindowKey] | None = None) -> int:
        """Fold each window's rows into one, and add base rows not yet rolled up to their roll-up
        windows; ``keys=None`` finds every window that needs either. Returns how many windows
        were folded (had several rows).

        With ``keys`` (the maintenance pass: the windows written since the last one), base
        windows are compacted a smallest roll-up window at a time (e.g. a series' hour), once
        the newest base window written (the data's own clock, so replayed or late data are
        judged by their own time) is past it; until then they are held, in memory, for a
        later call. An exporter sends one point per series per window, so rolling each pass's
        rows up at once rewrote every roll-up row of every series at every pass; held, an hour
        of a series is claimed, merged and rolled up once. Answers are exact meanwhile (a range
        query reads the base rows not yet rolled up), and the backlog is bounded: at most one
        smallest roll-up window of base rows per series (``keys=None`` takes those too).

        A chunk of windows is one transaction of a few statements, whatever its size: the
        chunk's rows are found in one join; the fresh base rows are claimed in one ``UPDATE ...
        SET rolled = 1 WHERE rolled = 0 ... RETURNING`` (a row only one compactor can claim:
        replicas on one PostgreSQL store never roll a base row up twice); the rows of windows
        that have several are taken with one ``DELETE ... RETURNING``, as are the roll-up rows
        the claimed rows add to; every row is parsed once and all merges of the chunk run
        together in columns (:class:`~infersight.processor.storage.merge.StoredRows`); the
        merged rows are inserted in one batch. A window with a single fresh row stays as it
        is (only its ``rolled`` flag changes). The claim, the roll-up rows and the folded rows
        commit together, so queries are exact before, during and after.

        Rows this store wrote are handed over already parsed (:meth:`_hand_over`, by
        series-hour and row id: a row's content never changes under its id); for those the
        claim returns only ids and the texts are not read. A row another replica claimed
        first is not returned by the claim, so its hand-over goes unused. ``keys=None`` also
        takes the spans held in memory.
        """
        return self._compact(keys, hold=keys is not None)

    def _compact(self, keys: Iterable[WindowKey] | None, *, hold: bool) -> int:
        base, rollups = self.window_sizes[0], self.window_sizes[1:]
        everything = keys is None
        if keys is None:
            rows = self._read(
                "SELECT model, version, role, name, size, start FROM stats "
                "GROUP BY model, version, role, name, size, start HAVING COUNT(*) > 1 OR MIN(rolled) = 0"
            )
            keys = [WindowKey(*r) for r in rows]
            keys.extend(self._fresh_batch_keys(""))
        # spans as plain tuples (a _Span's fields), made by comprehensions: this runs once per
        # window written; a series' base windows go to its smallest roll-up window's span
        spans, newest = spans_of(list(keys), base, rollups[0] if rollups else 0)
        with self._held_lock:
            if newest is not None:
                self._watermark = max(self._watermark, newest + base)
            if everything:  # held spans too (another replica may have taken their rows)
                spans |= self._held
                self._held = set()
            elif hold:
                spans |= self._held
                self._held = {s for s in spans if s[4] == base and s[6] > self._watermark}
                spans -= self._held
            else:
                self._held -= spans
        folded = 0
        for chunk in _chunks(sorted(spans), 200):
            with self._wlock, self._tx(self._w) as cur:
                if self.compaction_lock:
                    cur.execute(self.compaction_lock)
                folded += self._compact_chunk(cur, [_Span._make(t) for t in chunk])
        return folded

    def _fresh_batch_keys(self, where: str, params: Sequence[Any] = ()) -> list[WindowKey]:
        """A key for each batch row not rolled up yet (and ``where``): its first series' (a
        span of a model's series claims every batch row of that model in its time range)."""
        base = self.window_sizes[0]
        out: list[WindowKey] = []
        for model, start, names in self._read(
            f"SELECT model, start, names FROM batches WHERE rolled = 0{where}", params
        ):
            series = read_names(names)
            if series:
                out.append(WindowKey(model, *series[0], base, int(start)))
        return out

    def _claim_batches(self, cur: Any, chunk: Sequence[_Span]) -> list[tuple[int, str, int, str, bytes]]:
        """Claim the batch rows not rolled up yet in the chunk's base spans' time ranges (of
        each span's model: a batch row holds all of a model's series), as ``_compact_chunk``
        claims rows: ``(id, model, start, names, data)`` of those this compactor took. Their
        data comes from the hand-over where this store wrote them."""
        base = self.window_sizes[0]
        ranges = sorted({(s.model, s.size, s.lo, s.hi) for s in chunk if s.size == base})
        if not ranges:
            return []
        known: dict[int, tuple[int, str, bytes]] = {}
        if self._handover_batches:
            for model, _, lo, _ in ranges:
                got = self._handover_batches.pop((model, lo), None)
                if got is not None:
                    known.update(got)
                    self._handover_batch_rows -= sum(len(read_names(v[1])) for v in got.values())
        out: list[tuple[int, str, int, str, bytes]] = []
        unknown: list[int] = []
        for part in _chunks(ranges, 200):
            cur.execute(
                "UPDATE batches SET rolled = 1 WHERE rolled = 0 AND id IN (SELECT b.id FROM "
                f"(VALUES {','.join(['(?,?,?,?)'] * len(part))}) AS k JOIN batches b ON b.model = k.column1 "
                "AND b.size = k.column2 AND b.start >= k.column3 AND b.start < k.column4) RETURNING id, model",
                [v for r in part for v in r],
            )
            for bid, model in cur.fetchall():
                mine = known.get(bid)
                if mine is None:
                    unknown.append(bid)
                else:
                    out.append((bid, model, *mine))
        for ids in _chunks(unknown, 500):
            cur.execute(
                f"SELECT id, model, start, names, data FROM batches WHERE id IN ({','.join('?' * len(ids))})", ids
            )
            out.extend((int(r[0]), r[1], int(r[2]), r[3], bytes(r[4])) for r in cur.fetchall())
        out.sort()
        return out

    @property
    def held(self) -> int:
        """How many series' roll-up windows compaction holds until the data moves past them."""
        return len(self._held)

    def _compact_chunk(self, cur: Any, chunk: Sequence[_Span]) -> int:
        # Keys are plain 6-tuples here (a WindowKey is one, and equal to it): this loop runs
        # once per row, so no object is made per row that a tuple already is.
        base, rollups = self.window_sizes[0], self.window_sizes[1:]
        rows_by_key: dict[tuple[Any, ...], list[int]] = {}
        key_of: dict[int, tuple[Any, ...]] = {}
        fresh_ids: list[int] = []
        for r in self._rows_in(cur, chunk, "s.id, s.rolled"):
            k, row_id = r[:6], r[6]
            key_of[row_id] = k
            ids = rows_by_key.get(k)
            if ids is None:
                rows_by_key[k] = [row_id]
            else:
                ids.append(row_id)
            if not r[7] and r[4] == base:
                fresh_ids.append(row_id)
        # the stored bytes of the chunk's base rows this process wrote (only rows this
        # transaction claims are taken from it: a row another compactor took is not read)
        known: dict[int, bytes] = {}
        if self._handover:
            for span in chunk:
                if span.size == base:
                    got = self._handover.pop((span.model, span.version, span.role, span.name, span.lo), None)
                    if got is not None:
                        known.update(got)
                        self._handover_rows -= len(got)
        texts: dict[int, str | bytes] = {}
        claimed: list[int] = []  # fresh base rows this compactor rolls up
        first = rollups[0] if rollups else 0
        # The windows of the batch rows claimed, in one list, with the number of the smallest
        # roll-up window each adds to (numbered once per model, hour and names, not per
        # window); they add after the claimed rows of their own, in batch id order. A batch row
        # is never folded or deleted here: it stays as its base windows.
        batch_windows: list[bytes] = []
        batch_target: list[I64] = []
        target_no: dict[tuple[Any, ...], int] = {}
        numbered: dict[tuple[str, int, str], I64] = {}
        for _, model, start, names, blob in self._claim_batches(cur, chunk):
            if not rollups:
                continue  # claimed: nothing to add them to
            lo = start - start % first
            nums = numbered.get((model, lo, names))
            if nums is None:
                nums = numbered[(model, lo, names)] = np.fromiter(
                    (target_no.setdefault((model, *series, first, lo), len(target_no)) for series in read_names(names)),
                    np.int64,
                )
            batch_target.append(nums)
            batch_windows.extend(split_batch(blob))
        for ids in _chunks(fresh_ids, 500):
            marks = ",".join("?" * len(ids))
            if known:  # texts only of the rows not handed over
                cur.execute(f"UPDATE stats SET rolled = 1 WHERE rolled = 0 AND id IN ({marks}) RETURNING id", ids)
                taken = [r[0] for r in cur.fetchall()]
                claimed.extend(taken)
                unknown = [i for i in taken if i not in known]
                texts.update((i, known[i]) for i in taken if i in known)
                if unknown:
                    texts.update(self._texts(cur, unknown))
            else:
                cur.execute(f"UPDATE stats SET rolled = 1 WHERE rolled = 0 AND id IN ({marks}) RETURNING id, data", ids)
                for row_id, text in cur.fetchall():
                    texts[row_id] = text
                    claimed.append(row_id)
        # roll-up windows the claimed rows add to (each with its current rows, taken below)
        targets: dict[tuple[Any, ...], list[int]] = dict.fromkeys(target_no, [])
        claimed.sort()
        for row_id in claimed if rollups else ():
            model, version, role, name, _, start = key_of[row_id]
            t = (model, version, role, name, first, start - start % first)
            ids = targets.get(t)
            if not ids:  # (a batch target's list is a shared empty one until then)
                targets[t] = [row_id]
            else:
                ids.append(row_id)
        for t in list(targets):  # larger roll-ups take the smallest ones' additions (below)
            for size in rollups[1:]:
                targets.setdefault((*t[:4], size, t[5] - t[5] % size), [])
        # windows with several rows fold into one (a roll-up target is rewritten whole anyway)
        fold_ids = [i for k, ids in rows_by_key.items() if len(ids) > 1 and k not in targets for i in ids]
        fold: dict[tuple[Any, ...], list[int]] = {}
        for ids in _chunks(fold_ids, 500):
            cur.execute(
                f"DELETE FROM stats WHERE rolled = 1 AND id IN ({','.join('?' * len(ids))}) RETURNING id, data",
                ids,
            )
            for row_id, text in cur.fetchall():
                texts[row_id] = text
                fold.setdefault(key_of[row_id], []).append(row_id)
        existing: dict[tuple[Any, ...], list[int]] = {}
        target_keys = sorted(targets)
        for part in _chunks(target_keys, 500):
            ids = []
            spans = [_Span(k[0], k[1], k[2], k[3], k[4], k[5], k[5] + 1) for k in part]
            for r in self._rows_in(cur, spans, "s.id"):
                key_of[r[6]] = r[:6]
                ids.append(r[6])
            for id_chunk in _chunks(ids, 500):
                cur.execute(
                    f"DELETE FROM stats WHERE id IN ({','.join('?' * len(id_chunk))}) RETURNING id, data", id_chunk
                )
                for row_id, text in cur.fetchall():
                    texts[row_id] = text
                    existing.setdefault(key_of[row_id], []).append(row_id)
        out_keys: list[tuple[Any, ...]] = []
        groups: list[list[int]] = []
        single: list[tuple[Any, ...]] = []  # rows to insert: a window's one row goes back as it was
        for k, ids in fold.items():
            if len(ids) == 1:
                single.append((*k, texts[ids[0]]))
            else:
                out_keys.append(k)
                groups.append(ids)
        folded = len(groups)
        # Roll-ups a level at a time: the smallest roll-up windows take the claimed rows; each
        # larger one takes what the claimed rows added to the windows a level down (their
        # merge, already made), not every claimed row again. Merging is associative, so a day
        # is what it was, for about half the merging (an hour's 60 rows are merged once).
        by_size: dict[int, list[tuple[Any, ...]]] = {}
        for k in target_keys:
            by_size.setdefault(k[4], []).append(k)
        below: list[tuple[tuple[Any, ...], str | bytes]] = []  # (window, what it added) one level down
        # the batch windows each smallest roll-up window takes: batch_windows[lo:hi], in order
        from_batches: dict[tuple[Any, ...], tuple[int, int]] = {}
        if batch_windows:
            at_target = np.concatenate(batch_target)
            by_target = np.argsort(at_target, kind="stable")
            batch_windows = [batch_windows[i] for i in by_target.tolist()]
            ends = np.cumsum(np.bincount(at_target, minlength=len(target_no))).tolist()
            from_batches = {t: (ends[n - 1] if n else 0, ends[n]) for t, n in target_no.items()}
        for level, size in enumerate(rollups):
            here = by_size.get(size, [])
            more = level + 1 < len(rollups)
            if level == 0:
                adds = [targets[k] for k in here]
                data = texts
            else:
                data = {}
                inputs: dict[tuple[Any, ...], list[int]] = {}
                for n, (k, d) in enumerate(below):
                    data[-1 - n] = d  # negative ids: never a row's
                    inputs.setdefault((*k[:4], size, k[5] - k[5] % size), []).append(-1 - n)
                for k in here:
                    data.update((i, texts[i]) for i in existing.get(k, ()))
                adds = [inputs.get(k, []) for k in here]
            # what each window here added (merged separately only where the window had rows
            # already and a larger level needs the addition alone)
            extra = [(k, a) for k, a in zip(here, adds) if more and existing.get(k)]
            all_groups = [
                *groups,
                *(sorted(existing.get(k, ())) + a for k, a in zip(here, adds)),
                *(a for _, a in extra),
            ]
            if not all_groups:
                continue
            # each group's rows in order, the windows of batch rows after the rows of their own
            inputs_: list[str | bytes] = []
            lens: list[int] = []
            # (which window's batch windows a group takes: level 0's targets and their additions)
            takes: list[tuple[Any, ...] | None] = [None] * len(groups)
            if level == 0:
                takes.extend([*here, *(k for k, _ in extra)])
            for g, wk in itertools.zip_longest(all_groups, takes):
                inputs_.extend([data[i] for i in g])
                n_rows = len(g)
                window_span = from_batches.get(wk) if wk is not None else None
                if window_span is not None:
                    inputs_.extend(batch_windows[window_span[0] : window_span[1]])
                    n_rows += window_span[1] - window_span[0]
                lens.append(n_rows)
            parsed = StoredRows.parse(inputs_)
            merged = pack_windows(
                parsed.merged_flat(np.arange(len(inputs_), dtype=np.int64), np.array(lens, dtype=np.int64))
            )
            n_out = len(groups) + len(here)
            single.extend((*k, d) for k, d in zip([*out_keys, *here], merged[:n_out]))
            if more:
                added = dict(zip(here, merged[len(groups) : n_out]))
                added.update((k, d) for (k, _), d in zip(extra, merged[n_out:]))
                below = [(k, added[k]) for k in here]
            out_keys, groups = [], []
        if groups:  # no roll-ups: only folds
            order = sorted({i for g in groups for i in g})
            at = {row_id: n for n, row_id in enumerate(order)}
            parsed = StoredRows.parse([texts[i] for i in order])
            single.extend(
                (*k, d) for k, d in zip(out_keys, pack_windows(parsed.merged([[at[i] for i in g] for g in groups])))
            )
        if single:
            cur.executemany(
                "INSERT INTO stats (model, version, role, name, size, start, data, rolled) VALUES (?,?,?,?,?,?,?,1)",
                single,
            )
        return folded

    def _texts(self, cur: Any, ids: list[int]) -> dict[int, str | bytes]:
        """The stored data of rows ``ids``."""
        out: dict[int, str | bytes] = {}
        for part in _chunks(ids, 500):
            cur.execute(f"SELECT id, data FROM stats WHERE id IN ({','.join('?' * len(part))})", part)
            out.update((int(r[0]), r[1]) for r in cur.fetchall())
        return out

    def _rows_in(self, cur: Any, spans: Sequence[_Span], columns: str) -> list[tuple[Any, ...]]:
        """The key (6 columns) and ``columns`` of every row in ``spans``.

        The index is by model and time (``stats_window``), so the rows are read a model's
        time range at a time (one join for all of them) and those of other series dropped
        here: each row is read once however many of the model's series the spans name."""
        if not spans:
            return []
        wanted: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        ranges: set[tuple[Any, ...]] = set()
        for span in spans:
            wanted.setdefault(span[:5], []).append((span.lo, span.hi))
            ranges.add((span.model, span.size, span.lo, span.hi))
        marks = ",".join(["(?,?,?,?)"] * len(ranges))
        cur.execute(
            f"SELECT s.model, s.version, s.role, s.name, s.size, s.start, s.id, {columns} "
            f"FROM (VALUES {marks}) AS k JOIN stats s ON s.model = k.column1 AND s.size = k.column2 "
            "AND s.start >= k.column3 AND s.start < k.column4",
            [v for r in sorted(ranges) for v in r],
        )
        out: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        get = wanted.get
        for r in cur.fetchall():
            spans_of = get(r[:5])
            if spans_of is None:
                continue
            start = r[5]
            for lo, hi in spans_of:
                if lo <= start < hi:
                    break
            else:
                continue
            if r[6] not in seen:  # ranges of different sizes may overlap
                seen.add(r[6])
                out.append(r[:6] + r[7:])
        return out

    def expire(
        self, now: float, retention: dict[int, float], prediction_retention: float, dedup_ttl: float
    ) -> dict[str, int]:
        """Delete what is past its keep-until time; returns how many rows of each kind went.

        ``unlabelled`` counts predictions whose ground truth never arrived within the feedback
        TTL, ``orphan_feedback`` labels whose prediction never arrived.
        """
        out: dict[str, int] = {}
        ttl_ns = int((now - self.feedback_ttl) * 1e9)
        base = self.window_sizes[0]
        if base in retention:  # base rows past retention go only once they are in their roll-ups
            old = self._read(
                "SELECT DISTINCT model, version, role, name, size, start FROM stats "
                "WHERE size + 0 = ? AND rolled=0 AND start + 0 < ?",
                (base, int(now - retention[base])),
            )
            old_keys = [WindowKey(*r) for r in old]
            old_keys.extend(
                self._fresh_batch_keys(" AND size + 0 = ? AND start + 0 < ?", (base, int(now - retention[base])))
            )
            self._compact(old_keys, hold=False)
        with self._wlock, self._tx(self._w) as cur:
            n = 0
            for size, keep in retention.items():
                cur.execute(
                    "DELETE FROM stats WHERE size + 0 = ? AND start + 0 < ? AND rolled=1", (size, int(now - keep))
                )
                n += max(cur.rowcount, 0)
                # a batch row counts as the windows it holds
                cur.execute(
                    "DELETE FROM batches WHERE size + 0 = ? AND start + 0 < ? AND rolled=1 RETURNING n",
                    (size, int(now - keep)),
                )
                n += sum(int(r[0]) for r in cur.fetchall())
            out["windows"] = n
            cur.execute(
                "DELETE FROM predictions WHERE time_ns < ? AND NOT EXISTS (SELECT 1 FROM feedback f "
                "WHERE f.model = predictions.model AND f.request_id = predictions.request_id)",
                (ttl_ns,),
            )
            out["unlabelled"] = max(cur.rowcount, 0)
            cur.execute(
                "DELETE FROM outcomes WHERE time_ns < ? AND NOT EXISTS (SELECT 1 FROM feedback f "
                "WHERE f.model = outcomes.model AND f.request_id = outcomes.request_id)",
                (ttl_ns,),
            )
            out["unlabelled_outcomes"] = max(cur.rowcount, 0)
            cur.execute(
                "DELETE FROM feedback WHERE time_ns < ? AND NOT EXISTS (SELECT 1 FROM predictions p "
                "WHERE p.model = feedback.model AND p.request_id = feedback.request_id) "
                "AND NOT EXISTS (SELECT 1 FROM outcomes o "
                "WHERE o.model = feedback.model AND o.request_id = feedback.request_id)",
                (ttl_ns,),
            )
            out["orphan_feedback"] = max(cur.rowcount, 0)
            prediction_cutoff_ns = int((now - prediction_retention) * 1e9)
            cur.execute(
                "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM predictions "
                "WHERE predictions.model = feedback.model AND time_ns < ?)",
                (prediction_cutoff_ns,),
            )
            cur.execute("DELETE FROM predictions WHERE time_ns < ?", (prediction_cutoff_ns,))
            out["predictions"] = max(cur.rowcount, 0)
            # Outcomes live as long as sampled predictions; their labels go with them, and
            # labels whose call is gone from both tables go too.
            cur.execute(
                "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM outcomes "
                "WHERE outcomes.model = feedback.model AND time_ns < ?) AND NOT EXISTS (SELECT 1 FROM predictions p "
                "WHERE p.model = feedback.model AND p.request_id = feedback.request_id)",
                (prediction_cutoff_ns,),
            )
            cur.execute("DELETE FROM outcomes WHERE time_ns < ?", (prediction_cutoff_ns,))
            out["outcomes"] = max(cur.rowcount, 0)
            cur.execute(
                "DELETE FROM feedback_attributes WHERE NOT EXISTS (SELECT 1 FROM feedback f "
                "WHERE f.model = feedback_attributes.model AND f.request_id = feedback_attributes.request_id)"
            )
            cur.execute("DELETE FROM ingested WHERE at < ?", (int(now - dedup_ttl),))
            cur.execute("DELETE FROM streams WHERE at < ?", (int(now - max(prediction_retention, 86400)),))
        return out

    # -- reading --------------------------------------------------------------------------

    def query(
        self, model: str, role: str, name: str, start: int, end: int, version: str | None = None
    ) -> tuple[WindowStats, int]:
        """Merged statistics of one series over ``[start, end)`` and how many windows were merged."""
        segments = cover_range(start, end, self.window_sizes)
        if not segments:
            return WindowStats(), 0
        where, params = "role=? AND name=?", [role, name]
        if version is not None:
            where += " AND version=?"
            params.append(version)
        rows = self._read_segments("size, start, data", model, segments, where, params)
        hits = 0
        for names, data, size, start, bid in self._batch_segments(model, segments):
            at = find_series(names).get((role, name))
            if at:
                parts = split_batch(data)
                for i, v in at:
                    if version is None or v == version:
                        rows.append((size, start, parts[i], size, start, _BATCH_IDS + bid * _BATCH_STRIDE + i))
                        hits += 1
        if hits:
            rows.sort(key=lambda r: r[-3:])
        windows = {(r[0], r[1]) for r in rows}
        return WindowStats.merge_all(decode_window(r[2]) for r in rows), len(windows)

    def query_model(
        self, model: str, start: int, end: int, roles: Sequence[str] | None = None
    ) -> dict[tuple[str, str, str], WindowStats]:
        """Every series of ``model`` merged over ``[start, end)`` in one query (as :meth:`query`
        reads one series: roll-ups that fit plus base rows not yet rolled into them)."""
        segments = cover_range(start, end, self.window_sizes)
        if not segments:
            return {}
        where = ""
        params: list[Any] = []
        if roles is not None:
            where = f"role IN ({','.join('?' * len(roles))})"
            params.extend(roles)
        rows = self._read_segments("role, name, version, data", model, segments, where, params)
        wanted = None if roles is None else set(roles)
        hits = 0
        for names, data, size, start, bid in self._batch_segments(model, segments):
            first_id = _BATCH_IDS + bid * _BATCH_STRIDE
            for i, ((v, role, name), part) in enumerate(zip(read_names(names), split_batch(data))):
                if wanted is None or role in wanted:
                    rows.append((role, name, v, part, size, start, first_id + i))
                    hits += 1
        if hits:
            rows.sort(key=lambda r: r[-3:])
        parts: dict[tuple[str, str, str], list[WindowStats]] = {}
        for r in rows:
            parts.setdefault((r[0], r[1], r[2]), []).append(decode_window(r[3]))
        return {k: v[0] if len(v) == 1 else WindowStats.merge_all(v) for k, v in parts.items()}

    def _read_segments(
        self, columns: str, model: str, segments: Sequence[tuple[int, int, int]], where: str, params: list[Any]
    ) -> list[tuple[Any, ...]]:
        rows = self._read(*self._segments_sql(columns, model, segments, where, params))
        rows.sort(key=lambda r: r[-3:])
        return rows

    def _batch_segments(
        self, model: str, segments: Sequence[tuple[int, int, int]]
    ) -> list[tuple[str, bytes, int, int, int]]:
        """The batch rows a range query reads for ``segments`` (as :meth:`_segments_sql` reads
        base rows: all of a base segment, those not rolled up yet under a roll-up segment):
        ``(names, data, size, start, id)``."""
        base = self.window_sizes[0]
        parts: list[str] = []
        args: list[Any] = []
        for seg in segments:
            cond = "" if seg[0] == base else " AND rolled=0"
            parts.append(
                "SELECT names, data, size, start, id FROM batches "
                f"WHERE model=? AND size=? AND start>=? AND start<?{cond}"
            )
            args.extend((model, base, seg[1], seg[2]))
        return [
            (r[0], bytes(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in self._read(" UNION ALL ".join(parts), args)
        ]

    def _segments_sql(
        self, columns: str, model: str, segments: Sequence[tuple[int, int, int]], where: str, params: list[Any]
    ) -> tuple[str, list[Any]]:
        """One SELECT of ``columns`` per segment (its windows, plus the base rows compaction has
        not rolled into it yet), joined by ``UNION ALL``: each is a range of the model-by-time
        index (an ``OR`` of them made SQLite scan the model's every row), in the order the
        series index gave them (size, start, id), so merges add in the order they always did."""
        base = self.window_sizes[0]
        extra = f" AND {where}" if where else ""
        parts: list[str] = []
        args: list[Any] = []
        for seg in segments:
            terms = [(seg[0], "")] if seg[0] == base else [(seg[0], ""), (base, " AND rolled=0")]
            for size, cond in terms:
                parts.append(
                    f"SELECT {columns}, size AS s_, start AS t_, id AS i_ FROM stats "
                    f"WHERE model=? AND size=? AND start>=? AND start<?{cond}{extra}"
                )
                args.extend((model, size, seg[1], seg[2], *params))
        # sorted here, not by ORDER BY: that makes SQLite prefer the (size, start) index,
        # whose order it is, and read every model's rows in the range
        return " UNION ALL ".join(parts), args

    def label_counts(self, model: str, size: int, start: int, end: int) -> dict[int, int]:
        step = size * 10**9
        # GROUP BY 1, not the expression again: PostgreSQL takes two placeholders for two
        # different expressions and refuses the query (GroupingError)
        rows = self._read(
            "SELECT o.time_ns / ?, COUNT(*) FROM outcomes o JOIN feedback f "
            "ON f.model = o.model AND f.request_id = o.request_id "
            "WHERE o.model=? AND o.time_ns >= ? AND o.time_ns < ? GROUP BY 1",
            (step, model, start * 10**9, end * 10**9),
        )
        return {int(r[0]) * size: int(r[1]) for r in rows}

    def window_marks(self, model: str, start: int, end: int) -> dict[int, str]:
        """Per base window: how many rows it has and the newest row's id (a late point adds a
        row; compaction replaces rows, which changes the mark without changing the totals)."""
        args = (model, self.window_sizes[0], start, end)
        rows = self._read(
            "SELECT start, COUNT(*), MAX(id) FROM stats WHERE model=? AND size=? AND start>=? AND start<? "
            "GROUP BY start",
            args,
        )
        marks = {int(r[0]): f"{r[1]}:{r[2]}" for r in rows}
        # batch rows: how many windows they hold and the newest one's id, after the rows'
        for t, n, newest in self._read(
            "SELECT start, SUM(n), MAX(id) FROM batches WHERE model=? AND size=? AND start>=? AND start<? "
            "GROUP BY start",
            args,
        ):
            marks[int(t)] = f"{marks.get(int(t), '0:')}/{n}:{newest}"
        return marks

    def models(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT model, version, MIN(start), MAX(start + size) FROM stats WHERE size=? GROUP BY model, version",
            (self.window_sizes[0],),
        )
        for model, names, lo, hi in self._read(
            "SELECT model, names, MIN(start), MAX(start + size) FROM batches WHERE size=? GROUP BY model, names",
            (self.window_sizes[0],),
        ):
            rows.extend((model, v, lo, hi) for v in dict.fromkeys(s[0] for s in read_names(names)))
        by_model: dict[str, dict[str, Any]] = {}
        for model, version, lo, hi in rows:
            m = by_model.setdefault(model, {"model": model, "versions": [], "first": lo, "last": hi})
            if version not in m["versions"]:
                m["versions"].append(version)
            m["first"], m["last"] = min(m["first"], lo), max(m["last"], hi)
        for (model,) in self._read("SELECT DISTINCT model FROM predictions UNION SELECT DISTINCT model FROM outcomes"):
            by_model.setdefault(model, {"model": model, "versions": [], "first": None, "last": None})
        return [by_model[k] for k in sorted(by_model)]

    def series(self, model: str) -> list[dict[str, Any]]:
        """Every (role, name, version) the model has, with window count and time range."""
        base = self.window_sizes[0]
        rows = self._read(
            "SELECT role, name, version, COUNT(DISTINCT start), MIN(start), MAX(start + size) FROM stats "
            "WHERE model=? AND size=? GROUP BY role, name, version ORDER BY role, name, version",
            (model, base),
        )
        batched = self._read(
            "SELECT names, start FROM batches WHERE model=? AND size=? GROUP BY names, start", (model, base)
        )
        if batched:
            rows = self._series_with_batches(model, rows, batched)
        return [
            {"role": r[0], "name": r[1], "version": r[2], "windows": r[3], "first": r[4], "last": r[5]} for r in rows
        ]

    def _series_with_batches(
        self, model: str, rows: list[tuple[Any, ...]], batched: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """:meth:`series`' rows with the windows batch rows hold: a window counts once, in a
        batch row, a row of its own or both."""
        base = self.window_sizes[0]
        starts: dict[tuple[str, str, str], set[int]] = {}
        by_names: dict[str, list[int]] = {}
        for names, start in batched:
            by_names.setdefault(names, []).append(int(start))
        for names, listed in by_names.items():
            for v, role, name in read_names(names):
                starts.setdefault((role, name, v), set()).update(listed)
        out = {(r[0], r[1], r[2]): r for r in rows}
        lo = min(min(ts) for ts in starts.values())
        hi = max(max(ts) for ts in starts.values())
        # the windows of a row of their own among the batch rows' (the rest only add their count)
        overlap = self._read(
            "SELECT DISTINCT role, name, version, start FROM stats WHERE model=? AND size=? AND start>=? AND start<=?",
            (model, base, lo, hi),
        )
        own: dict[tuple[str, str, str], set[int]] = {}
        for role, name, v, start in overlap:
            own.setdefault((role, name, v), set()).add(int(start))
        for k, ts in starts.items():
            r = out.get(k)
            if r is None:
                out[k] = (*k, len(ts), min(ts), max(ts) + base)
            else:
                both = len(ts & own.get(k, set()))
                out[k] = (*k, r[3] + len(ts) - both, min(r[4], min(ts)), max(r[5], max(ts) + base))
        return [out[k] for k in sorted(out)]

    def prediction_counts(self, model: str) -> dict[str, int]:
        logged = self._read("SELECT COUNT(*) FROM predictions WHERE model=?", (model,))[0][0]
        labelled = self._read(
            "SELECT COUNT(*) FROM predictions p JOIN feedback f ON f.model = p.model AND f.request_id = p.request_id "
            "WHERE p.model=?",
            (model,),
        )[0][0]
        waiting = self._read(
            "SELECT COUNT(*) FROM feedback f WHERE f.model=? AND NOT EXISTS (SELECT 1 FROM predictions p "
            "WHERE p.model = f.model AND p.request_id = f.request_id)",
            (model,),
        )[0][0]
        return {"logged": int(logged), "labelled": int(labelled), "feedback_waiting": int(waiting)}

    def joined(
        self, model: str, start_ns: int, end_ns: int, *, labelled_only: bool = False, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Predictions in ``[start_ns, end_ns)`` with their ground truth (``actual`` is ``None``
        while the label has not arrived)."""
        join = "JOIN" if labelled_only else "LEFT JOIN"
        rows = self._read(
            "SELECT p.request_id, p.version, p.time_ns, p.trace_id, p.span_id, p.inputs, p.outputs, "
            f"p.truncated, f.actual, f.time_ns FROM predictions p {join} feedback f "
            "ON f.model = p.model AND f.request_id = p.request_id "
            "WHERE p.model=? AND p.time_ns >= ? AND p.time_ns < ? ORDER BY p.time_ns LIMIT ?",
            (model, start_ns, end_ns, limit),
        )
        return [
            {
                "request_id": r[0],
                "version": r[1],
                "time": r[2] / 1e9,
                "trace_id": r[3],
                "span_id": r[4],
                "inputs": _loads(r[5]),
                "outputs": _loads(r[6]),
                "truncated": bool(r[7]),
                "actual": _loads(r[8]),
                "feedback_time": None if r[9] is None else r[9] / 1e9,
            }
            for r in rows
        ]

    def outcomes(
        self, model: str, start_ns: int, end_ns: int, *, version: str | None = None, labelled_only: bool = False
    ) -> list[dict[str, Any]]:
        join = "JOIN" if labelled_only else "LEFT JOIN"
        vsql, params = "", [model, start_ns, end_ns]
        if version is not None:
            vsql = " AND o.version=?"
            params.append(version)
        rows = self._read(
            "SELECT o.request_id, o.version, o.time_ns, o.trace_id, o.span_id, o.prediction, o.nrows, o.truncated, "
            f"f.actual, f.time_ns, a.attributes FROM outcomes o {join} feedback f "
            "ON f.model = o.model AND f.request_id = o.request_id "
            "LEFT JOIN feedback_attributes a ON a.model = o.model AND a.request_id = o.request_id "
            f"WHERE o.model=? AND o.time_ns >= ? AND o.time_ns < ?{vsql} ORDER BY o.time_ns",
            params,
        )
        return [
            {
                "request_id": r[0],
                "version": r[1],
                "time_ns": int(r[2]),
                "trace_id": r[3] or "",
                "span_id": r[4] or "",
                "prediction": _loads(r[5]),
                "rows": int(r[6]),
                "truncated": bool(r[7]),
                "actual": _loads(r[8]),
                "feedback_time_ns": None if r[9] is None else int(r[9]),
                "feedback_attributes": _loads(r[10]) or {},
            }
            for r in rows
        ]

    def outcome_versions(self, model: str) -> dict[str, dict[str, int]]:
        rows = self._read(
            "SELECT version, MIN(time_ns), MAX(time_ns), COUNT(*) FROM outcomes WHERE model=? GROUP BY version",
            (model,),
        )
        return {r[0]: {"first_ns": int(r[1]), "last_ns": int(r[2]), "calls": int(r[3])} for r in rows}

    # -- evaluation records -----------------------------------------------------------------

    def put_records(self, records: Sequence[Record]) -> None:
        if not records:
            return
        sql = self.upsert(
            "records", ("kind", "key", "model", "time", "body"), ("kind", "key"), ("model", "time", "body")
        )
        enc = _RECORD_JSON.encode  # json.dumps(body, allow_nan=False) without an encoder per call
        rows = [(r.kind, r.key, r.model, float(r.time), enc(r.body)) for r in records]
        with self._wlock, self._tx(self._w) as cur:
            cur.executemany(sql, rows)

    def get_records(
        self,
        kind: str,
        *,
        model: str | None = None,
        key: str | None = None,
        key_prefix: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Record]:
        conds: list[str] = ["kind=?"]
        params: list[Any] = [kind]
        for cond, value in (("model=?", model), ("key=?", key), ("time>=?", start), ("time<?", end)):
            if value is not None:
                conds.append(cond)
                params.append(value)
        if key_prefix is not None:  # not LIKE (keys may hold % and _), not a range (collations differ)
            conds.append("substr(key, 1, ?)=?")
            params.extend((len(key_prefix), key_prefix))
        sql = f"SELECT kind, key, model, time, body FROM records WHERE {' AND '.join(conds)} ORDER BY time"
        sql += " DESC, key DESC" if newest_first else ", key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [Record(r[0], r[1], r[2], float(r[3]), json.loads(r[4])) for r in self._read(sql, params)]

    def delete_records(self, kind: str, *, before: float | None = None, keys: Sequence[str] = ()) -> int:
        n = 0
        with self._wlock, self._tx(self._w) as cur:
            if before is not None:
                cur.execute("DELETE FROM records WHERE kind=? AND time<?", (kind, float(before)))
                n += max(cur.rowcount, 0)
            for chunk in _chunks(list(keys), 500):
                cur.execute(
                    f"DELETE FROM records WHERE kind=? AND key IN ({','.join('?' * len(chunk))})", (kind, *chunk)
                )
                n += max(cur.rowcount, 0)
        return n

    # -- leases -------------------------------------------------------------------------------
    #
    # One row per lease. Taking one is a single upsert whose update only applies when the row is
    # free, expired or already ours, followed by a read of the row in the same transaction: the
    # row lock (PostgreSQL) or the write lock (SQLite, BEGIN IMMEDIATE) makes two replicas that
    # race for it agree on one winner. Every write fenced by a lease first renews it in its own
    # transaction, keyed by owner and epoch: a lease that moved makes the write roll back.

    def _now(self, cur: Any) -> float:
        cur.execute(self.clock_sql)
        return float(cur.fetchall()[0][0])

    def _check_fence(self, cur: Any, lease: Lease, ttl: float) -> None:
        cur.execute(
            "UPDATE leases SET expires=? WHERE name=? AND owner=? AND epoch=?",
            (self._now(cur) + ttl, lease.name, lease.owner, lease.epoch),
        )
        if cur.rowcount != 1:
            raise LeaseLost(
                f"lease {lease.name!r} (epoch {lease.epoch}) is no longer held by {lease.owner!r}: "
                "another replica took it over; this write was not committed"
            )

    def acquire_lease(self, name: str, owner: str, ttl: float, *, now: float | None = None) -> Lease | None:
        with self._wlock, self._tx(self._w, fence=False) as cur:
            t = self._now(cur) if now is None else float(now)
            cur.execute(
                "INSERT INTO leases (name, owner, epoch, expires) VALUES (?, ?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
                "epoch = CASE WHEN leases.owner = excluded.owner THEN leases.epoch ELSE leases.epoch + 1 END, "
                "owner = excluded.owner, expires = excluded.expires "
                "WHERE leases.owner = excluded.owner OR leases.expires <= ?",
                (name, owner, t + ttl, t),
            )
            cur.execute("SELECT owner, epoch, expires FROM leases WHERE name=?", (name,))
            row = cur.fetchall()[0]
        if row[0] != owner:
            return None
        return Lease(name, owner, int(row[1]), float(row[2]))

    def renew_lease(self, lease: Lease, ttl: float, *, now: float | None = None) -> Lease | None:
        with self._wlock, self._tx(self._w, fence=False) as cur:
            t = self._now(cur) if now is None else float(now)
            cur.execute(
                "UPDATE leases SET expires=? WHERE name=? AND owner=? AND epoch=?",
                (t + ttl, lease.name, lease.owner, lease.epoch),
            )
            ok = cur.rowcount == 1
        return Lease(lease.name, lease.owner, lease.epoch, t + ttl) if ok else None

    def release_lease(self, lease: Lease) -> bool:
        with self._wlock, self._tx(self._w, fence=False) as cur:
            cur.execute(
                "UPDATE leases SET expires=0 WHERE name=? AND owner=? AND epoch=?",
                (lease.name, lease.owner, lease.epoch),
            )
            return cur.rowcount == 1

    def leases(self, prefix: str = "", *, now: float | None = None) -> list[Lease]:
        if now is None:
            with self._rlock:
                c = self._r.cursor()
                try:
                    c.execute(self.clock_sql)
                    now = float(c.fetchall()[0][0])
                finally:
                    c.close()
        rows = self._read(
            "SELECT name, owner, epoch, expires FROM leases WHERE substr(name, 1, ?)=? AND expires > ? ORDER BY name",
            (len(prefix), prefix, float(now)),
        )
        return [Lease(r[0], r[1], int(r[2]), float(r[3])) for r in rows]

    @contextlib.contextmanager
    def fenced(self, lease: Lease, ttl: float) -> Iterator[None]:
        """Every write transaction this thread opens in the block first renews ``lease`` (by
        owner and epoch) inside that transaction, and rolls back with :class:`LeaseLost` when
        it has moved: a replica that lost a model cannot commit a verdict on it."""
        prev = getattr(self._fence, "held", None)
        self._fence.held = (lease, ttl)
        try:
            yield
        finally:
            self._fence.held = prev

    def row_count(self) -> int:
        """Stored windows: rows, and the windows batch rows hold."""
        rows = int(self._read("SELECT COUNT(*) FROM stats")[0][0])
        return rows + int(self._read("SELECT COALESCE(SUM(n), 0) FROM batches")[0][0])

    # -- kept spans and log records --------------------------------------------------------------

    def _write_trace_items(self, cur: Any, items: Sequence[TraceItem]) -> None:
        # a span sent twice (an exporter's retry) replaces itself; a flag once set stays set
        sql = self.upsert("trace_items", _TRACE_ITEM_COLUMNS, ("trace_id", "item_id"), ("body", "time_ns"))
        enc = json.JSONEncoder(default=str).encode
        cur.executemany(
            sql,
            [
                (i.trace_id, i.item_id, i.kind, i.model, i.request_id, i.time_ns, int(i.flagged), enc(i.body))
                for i in items
            ],
        )
        flagged = sorted({i.trace_id for i in items if i.flagged})
        for chunk in _chunks(flagged, 500):  # the whole trace is kept once one of its items is flagged
            cur.execute(
                f"UPDATE trace_items SET flagged=1 WHERE flagged=0 AND trace_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )

    def trace_items(
        self, *, trace_id: str | None = None, request_id: str | None = None, limit: int = 5000
    ) -> list[TraceItem]:
        cols = ", ".join(_TRACE_ITEM_COLUMNS)
        if trace_id is not None:
            rows = self._read(
                f"SELECT {cols} FROM trace_items WHERE trace_id=? ORDER BY time_ns, item_id LIMIT ?",
                (trace_id, int(limit)),
            )
        elif request_id is not None:
            rows = self._read(
                f"SELECT {cols} FROM trace_items WHERE trace_id IN "
                "(SELECT trace_id FROM trace_items WHERE request_id=?) ORDER BY time_ns, item_id LIMIT ?",
                (request_id, int(limit)),
            )
        else:
            raise ValueError("trace_items() needs trace_id= or request_id=")
        return [TraceItem(r[0], r[1], r[2], r[3], r[4], int(r[5]), bool(r[6]), json.loads(r[7])) for r in rows]

    def expire_trace_items(self, now: float, recent: float, retention: float, max_items: int) -> int:
        n = 0
        with self._wlock, self._tx(self._w) as cur:
            cur.execute("DELETE FROM trace_items WHERE time_ns < ?", (int((now - retention) * 1e9),))
            n += max(cur.rowcount, 0)
            # flags are spread to the whole trace at write time, so "unflagged" is per trace
            cur.execute("DELETE FROM trace_items WHERE flagged=0 AND time_ns < ?", (int((now - recent) * 1e9),))
            n += max(cur.rowcount, 0)
            for flagged_too in (0, 1):
                cur.execute("SELECT COUNT(*) FROM trace_items")
                over = int(cur.fetchall()[0][0]) - max_items
                if over <= 0:
                    break
                cond = "" if flagged_too else "flagged=0 AND "
                cur.execute(
                    f"DELETE FROM trace_items WHERE {cond}time_ns <= (SELECT time_ns FROM trace_items "
                    f"WHERE {cond}1=1 ORDER BY time_ns LIMIT 1 OFFSET ?)",
                    (over - 1,),
                )
                n += max(cur.rowcount, 0)
        return n

    def request_rows(self, request_id: str, model: str | None = None) -> dict[str, Any]:
        models = [model] if model else [m["model"] for m in self.models()]
        out: dict[str, Any] = {"prediction": None, "outcome": None, "feedback": None}
        for m in models:  # by primary key (model, request_id), one model at a time
            p = self._read(
                "SELECT model, version, time_ns, trace_id, span_id, inputs, outputs, truncated FROM predictions "
                "WHERE model=? AND request_id=?",
                (m, request_id),
            )
            o = self._read(
                "SELECT model, version, time_ns, trace_id, span_id, prediction, nrows, truncated FROM outcomes "
                "WHERE model=? AND request_id=?",
                (m, request_id),
            )
            f = self._read(
                "SELECT f.model, f.version, f.time_ns, f.actual, a.attributes FROM feedback f LEFT JOIN "
                "feedback_attributes a ON a.model = f.model AND a.request_id = f.request_id "
                "WHERE f.model=? AND f.request_id=?",
                (m, request_id),
            )
            if p and out["prediction"] is None:
                r = p[0]
                out["prediction"] = {
                    "model": r[0],
                    "version": r[1],
                    "time": r[2] / 1e9,
                    "trace_id": r[3],
                    "span_id": r[4],
                    "inputs": _loads(r[5]),
                    "outputs": _loads(r[6]),
                    "truncated": bool(r[7]),
                }
            if o and out["outcome"] is None:
                r = o[0]
                out["outcome"] = {
                    "model": r[0],
                    "version": r[1],
                    "time": r[2] / 1e9,
                    "trace_id": r[3],
                    "span_id": r[4],
                    "prediction": _loads(r[5]),
                    "rows": int(r[6]),
                    "truncated": bool(r[7]),
                }
            if f and out["feedback"] is None:
                r = f[0]
                out["feedback"] = {
                    "model": r[0],
                    "version": r[1],
                    "time": r[2] / 1e9,
                    "actual": _loads(r[3]),
                    "attributes": _loads(r[4]) or {},
                }
        return out

    def iter_windows(self, size: int | None = None) -> Iterator[tuple[WindowKey, WindowStats]]:
        """Every stored window row (for replica merges and tests)."""
        sql = "SELECT model, version, role, name, size, start, data FROM stats"
        rows = self._read(sql + " WHERE size=?", (size,)) if size else self._read(sql)
        for r in rows:
            yield WindowKey(*r[:6]), decode_window(r[6])
        sql = "SELECT model, size, start, names, data FROM batches"
        for model, size_, start, names, data in self._read(sql + " WHERE size=?", (size,)) if size else self._read(sql):
            for series, part in zip(read_names(names), split_batch(data)):
                yield WindowKey(model, *series, int(size_), int(start)), decode_window(part)


class _Span(NamedTuple):
    """A series' windows of one size starting in ``[lo, hi)``: what compaction takes at once."""

    model: str
    version: str
    role: str
    name: str
    size: int
    lo: int
    hi: int


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a truncated payload is not valid JSON; give it back as sent


# a window key's series within its model: (version, role, name)
_SERIES_OF = operator.itemgetter(1, 2, 3)
_IDENT_OF = operator.itemgetter(0, 1, 2, 3)
_SIZE_OF = operator.itemgetter(4)
_START_OF = operator.itemgetter(5)


def spans_of(keys: list[tuple[Any, ...]], base: int, first: int) -> tuple[set[tuple[Any, ...]], int | None]:
    """The spans (a ``_Span``'s fields as a plain tuple) compaction takes for windows ``keys``
    written: a base window's series and smallest roll-up window ``first`` (``0``: none), any
    other window on its own; and the newest base window's start (``None`` without one).
    Series and starts are taken out of the keys by C-level maps (this runs once per window
    written), the spans made once per series and roll-up window.

    >>> spans_of([("m", "1", "feature", "a", 60, 3660), ("m", "1", "feature", "a", 60, 3720)], 60, 3600)
    ({('m', '1', 'feature', 'a', 60, 3600, 7200)}, 3720)
    """
    if not first:
        return {(*k[:4], k[4], k[5], k[5] + 1) for k in keys}, None
    if set(map(_SIZE_OF, keys)) == {base}:
        at_base, others = keys, []
    else:
        at_base = [k for k in keys if k[4] == base]
        others = [k for k in keys if k[4] != base]
    spans: set[tuple[Any, ...]] = {(*k[:4], k[4], k[5], k[5] + 1) for k in others}
    if not at_base:
        return spans, None
    starts = np.fromiter(map(_START_OF, at_base), np.int64, len(at_base))
    opened = set(zip(map(_IDENT_OF, at_base), (starts - starts % first).tolist()))
    spans.update((*ident, base, lo, lo + first) for ident, lo in opened)
    return spans, int(starts.max())


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class _Cursor:
    """A cursor that writes ``?`` placeholders in the style the driver wants."""

    def __init__(self, cur: Any, sql: Any) -> None:
        self._cur, self._sqlfix = cur, sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(self._sqlfix(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(self._sqlfix(sql), rows)

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    @property
    def raw(self) -> Any:
        """The driver's cursor (for what only one engine speaks)."""
        return self._cur

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)
