"""Durable windowed storage: SQLite (embedded, WAL, the default) or PostgreSQL (shared by
replicas), behind one small interface.

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

A batch, its request digests (for retry de-duplication) and the cumulative-stream state are
written in one transaction: the receiver acknowledges only after that commit.

Example:
    >>> st = open_storage("sqlite:///:memory:", window_sizes=(60, 3600))
    >>> st.models()
    []
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from infersight.processor.windows import Feedback, Prediction, WindowKey, WindowStats

__all__ = ["Storage", "SqlStorage", "WriteBatch", "open_storage", "cover_range", "StorageError"]


class StorageError(RuntimeError):
    """The store cannot be opened or written; the message names the URL and the cause."""


@dataclass
class WriteBatch:
    """Everything one commit writes."""

    windows: dict[WindowKey, WindowStats] = field(default_factory=dict)
    predictions: list[Prediction] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    streams: dict[str, str] = field(default_factory=dict)  # cumulative stream key -> state JSON


def cover_range(start: int, end: int, sizes: Sequence[int]) -> list[tuple[int, int, int]]:
    """Window segments ``(size, first_start, end_start)`` that tile ``[start, end)``.

    A window belongs to the range when its *start* lies in ``[start, end)``; the range is first
    widened to base-window boundaries under that rule, then tiled with the largest windows that
    fit, smaller ones at the edges.

    >>> cover_range(0, 7200 + 120, (60, 3600))
    [(3600, 0, 7200), (60, 7200, 7320)]
    """
    base = sizes[0]
    s = -(-start // base) * base
    e = -(-end // base) * base
    return _cover(s, e, sorted(sizes, reverse=True)) if e > s else []


def _cover(s: int, e: int, sizes: list[int]) -> list[tuple[int, int, int]]:
    if s >= e:
        return []
    size, rest = sizes[0], sizes[1:]
    if not rest:
        return [(size, s, e)]  # the base level: s and e are already on its boundaries
    a = -(-s // size) * size
    b = e - e % size
    if a >= b:
        return _cover(s, e, rest)
    return _cover(s, a, rest) + [(size, a, b)] + _cover(b, e, rest)


_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS stats (
        id {id},
        model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
        size INTEGER NOT NULL, start BIGINT NOT NULL, data TEXT NOT NULL,
        rolled INTEGER NOT NULL DEFAULT 1)""",
    "CREATE INDEX IF NOT EXISTS stats_series ON stats (model, role, name, size, start)",
    """CREATE TABLE IF NOT EXISTS predictions (
        model TEXT NOT NULL, request_id TEXT NOT NULL, version TEXT NOT NULL, time_ns BIGINT NOT NULL,
        trace_id TEXT, span_id TEXT, inputs TEXT, outputs TEXT, truncated INTEGER NOT NULL,
        PRIMARY KEY (model, request_id))""",
    "CREATE INDEX IF NOT EXISTS predictions_time ON predictions (model, time_ns)",
    """CREATE TABLE IF NOT EXISTS feedback (
        model TEXT NOT NULL, request_id TEXT NOT NULL, version TEXT NOT NULL, time_ns BIGINT NOT NULL,
        actual TEXT NOT NULL, PRIMARY KEY (model, request_id))""",
    "CREATE TABLE IF NOT EXISTS ingested (digest TEXT PRIMARY KEY, at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS streams (key TEXT PRIMARY KEY, state TEXT NOT NULL, at BIGINT NOT NULL)",
]


class SqlStorage:
    """The storage interface over a DB-API connection (sqlite3 or psycopg).

    Thread use: one lock serialises writes (ingest batches, compaction, expiry); reads use a
    second connection under their own lock, so queries never wait for a commit in WAL mode.
    """

    def __init__(self, url: str, window_sizes: Sequence[int], *, feedback_ttl: float = 7 * 86400) -> None:
        self.url = url
        self.window_sizes = tuple(window_sizes)
        self.feedback_ttl = feedback_ttl
        self.dialect = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._w = self._connect()
        self._r = self._connect() if not self._memory else self._w
        if self._memory:
            self._rlock = self._wlock
        with self._wlock, self._tx(self._w) as cur:
            idtype = "BIGSERIAL PRIMARY KEY" if self.dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
            for stmt in _SCHEMA:
                cur.execute(stmt.format(id=idtype))
            # Stores made before roll-ups moved to compaction wrote them at ingest: their rows
            # count as rolled (the column's default), so nothing is rolled up twice.
            cur.execute("SELECT * FROM stats WHERE 1=0")
            if "rolled" not in [d[0] for d in cur.description]:
                cur.execute("ALTER TABLE stats ADD COLUMN rolled INTEGER NOT NULL DEFAULT 1")

    # -- connections ----------------------------------------------------------------------

    @property
    def _memory(self) -> bool:
        return self.dialect == "sqlite" and self._sqlite_path() == ":memory:"

    def _sqlite_path(self) -> str:
        path = self.url[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        return unquote(path) or ":memory:"

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            path = self._sqlite_path()
            try:
                conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
                if path != ":memory:":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # an acknowledged batch survives power loss
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open SQLite database {path!r}: {exc}") from exc
            return conn
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            safe = urlparse(self.url)._replace(netloc=urlparse(self.url).hostname or "").geturl()
            raise StorageError(f"cannot connect to PostgreSQL at {safe!r}: {exc}") from exc

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    class _Tx:
        def __init__(self, store: SqlStorage, conn: Any) -> None:
            self.store, self.conn = store, conn

        def __enter__(self) -> Any:
            self.cur = self.conn.cursor()
            self.cur.execute("BEGIN IMMEDIATE" if self.store.dialect == "sqlite" else "BEGIN")
            return _Cursor(self.cur, self.store._sql)

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                self.cur.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.cur.close()

    def _tx(self, conn: Any) -> SqlStorage._Tx:
        return SqlStorage._Tx(self, conn)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._rlock:
            cur = self._r.cursor()
            try:
                cur.execute(self._sql(sql), tuple(params))
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
        upsert = "ON CONFLICT (model, request_id) DO UPDATE SET "
        base = self.window_sizes[0]
        wrong = [k for k in batch.windows if k.size != base]
        if wrong:
            raise ValueError(
                f"write() takes base windows ({base} s) only; got a {wrong[0].size} s window "
                f"({wrong[0]}): roll-ups are built by compact()"
            )
        rows = [(*k, text) for k, text in zip(batch.windows, WindowStats.to_json_many(list(batch.windows.values())))]
        with self._wlock, self._tx(self._w) as cur:
            if rows:
                cur.executemany(
                    "INSERT INTO stats (model, version, role, name, size, start, data, rolled) VALUES (?,?,?,?,?,?,?,0)",
                    rows,
                )
            if batch.predictions:
                cur.executemany(
                    "INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (model, request_id) DO NOTHING",
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
                    "INSERT INTO feedback VALUES (?,?,?,?,?) "
                    + upsert
                    + "version = excluded.version, time_ns = excluded.time_ns, actual = excluded.actual",
                    [(f.model, f.request_id, f.version, f.time_ns, f.actual) for f in batch.feedback],
                )
            if batch.digests:
                cur.executemany(
                    "INSERT INTO ingested VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
                    [(d, at) for d in batch.digests],
                )
            if batch.streams:
                cur.executemany(
                    "INSERT INTO streams VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET state = excluded.state, at = excluded.at",
                    [(k, v, at) for k, v in batch.streams.items()],
                )

    def compact(self, keys: Iterable[WindowKey] | None = None) -> int:
        """Fold each window's rows into one, and add base rows not yet rolled up to their roll-up
        windows; ``keys=None`` finds every window that needs either. Returns how many windows
        were folded (had several rows).

        Exactness under concurrency: ``DELETE ... RETURNING`` claims a window's rows, so two
        compactors (replicas on one PostgreSQL store) never both roll up the same base row, and
        the claim, the roll-up rows and the folded row commit together.
        """
        base, rollups = self.window_sizes[0], self.window_sizes[1:]
        if keys is None:
            rows = self._read(
                "SELECT model, version, role, name, size, start FROM stats "
                "GROUP BY model, version, role, name, size, start HAVING COUNT(*) > 1 OR MIN(rolled) = 0"
            )
            keys = [WindowKey(*r) for r in rows]
        folded = 0
        for chunk in _chunks(sorted(set(keys)), 500):
            with self._wlock, self._tx(self._w) as cur:
                up: dict[WindowKey, list[WindowStats]] = {}
                for k in chunk:
                    merged, fresh, n = self._claim(cur, k)
                    if merged is None:
                        continue
                    folded += n > 1
                    self._insert(cur, k, merged)
                    if k.size == base and fresh:
                        part = fresh[0] if len(fresh) == 1 else WindowStats.merge_all(fresh)
                        for size in rollups:
                            up.setdefault(k._replace(size=size, start=k.start - k.start % size), []).append(part)
                for k in sorted(up):  # one order for every compactor: no lock cycles between replicas
                    merged, _, _ = self._claim(cur, k, extra=up[k])
                    assert merged is not None
                    self._insert(cur, k, merged)
        return folded

    def _claim(
        self, cur: Any, k: WindowKey, extra: Sequence[WindowStats] = ()
    ) -> tuple[WindowStats | str | None, list[WindowStats], int]:
        """Delete window ``k``'s rows; return them merged (with ``extra``), the rows not yet
        rolled up, and how many rows there were."""
        cur.execute(
            "DELETE FROM stats WHERE model=? AND version=? AND role=? AND name=? AND size=? AND start=? "
            "RETURNING data, rolled",
            tuple(k),
        )
        got = cur.fetchall()
        if not got and not extra:
            return None, [], 0
        if len(got) == 1 and not extra and got[0][1]:
            return got[0][0], [], 1  # one row, already rolled up: put back as it was
        stats = [WindowStats.from_json(r[0]) for r in got]
        fresh = [ws for ws, r in zip(stats, got) if not r[1]]
        every = stats + list(extra)
        if len(every) == 1:  # nothing to merge: a stored row goes back as its text was
            return (got[0][0] if got else every[0]), fresh, len(got)
        return WindowStats.merge_all(every), fresh, len(got)

    def _insert(self, cur: Any, k: WindowKey, ws: WindowStats | str) -> None:
        cur.execute(
            "INSERT INTO stats (model, version, role, name, size, start, data, rolled) VALUES (?,?,?,?,?,?,?,1)",
            (*k, ws if isinstance(ws, str) else ws.to_json()),
        )

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
                "WHERE size=? AND rolled=0 AND start < ?",
                (base, int(now - retention[base])),
            )
            self.compact(WindowKey(*r) for r in old)
        with self._wlock, self._tx(self._w) as cur:
            n = 0
            for size, keep in retention.items():
                cur.execute("DELETE FROM stats WHERE size=? AND start < ? AND rolled=1", (size, int(now - keep)))
                n += max(cur.rowcount, 0)
            out["windows"] = n
            cur.execute(
                "DELETE FROM predictions WHERE time_ns < ? AND NOT EXISTS (SELECT 1 FROM feedback f "
                "WHERE f.model = predictions.model AND f.request_id = predictions.request_id)",
                (ttl_ns,),
            )
            out["unlabelled"] = max(cur.rowcount, 0)
            cur.execute(
                "DELETE FROM feedback WHERE time_ns < ? AND NOT EXISTS (SELECT 1 FROM predictions p "
                "WHERE p.model = feedback.model AND p.request_id = feedback.request_id)",
                (ttl_ns,),
            )
            out["orphan_feedback"] = max(cur.rowcount, 0)
            old = int((now - prediction_retention) * 1e9)
            cur.execute(
                "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM predictions "
                "WHERE predictions.model = feedback.model AND time_ns < ?)",
                (old,),
            )
            cur.execute("DELETE FROM predictions WHERE time_ns < ?", (old,))
            out["predictions"] = max(cur.rowcount, 0)
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
        base = self.window_sizes[0]
        conds: list[str] = []
        params: list[Any] = [model, role, name]
        vsql = ""
        if version is not None:
            vsql = " AND version=?"
            params.append(version)
        for seg in segments:
            conds.append("(size=? AND start>=? AND start<?)")
            params.extend(seg)
            if seg[0] != base:  # base rows compaction has not rolled into this segment yet
                conds.append("(size=? AND rolled=0 AND start>=? AND start<?)")
                params.extend((base, seg[1], seg[2]))
        cond = " OR ".join(conds)
        rows = self._read(
            f"SELECT size, start, data FROM stats WHERE model=? AND role=? AND name=?{vsql} AND ({cond})",
            params,
        )
        windows = {(r[0], r[1]) for r in rows}
        return WindowStats.merge_all(WindowStats.from_json(r[2]) for r in rows), len(windows)

    def models(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT model, version, MIN(start), MAX(start + size) FROM stats WHERE size=? GROUP BY model, version",
            (self.window_sizes[0],),
        )
        by_model: dict[str, dict[str, Any]] = {}
        for model, version, lo, hi in rows:
            m = by_model.setdefault(model, {"model": model, "versions": [], "first": lo, "last": hi})
            m["versions"].append(version)
            m["first"], m["last"] = min(m["first"], lo), max(m["last"], hi)
        for (model,) in self._read("SELECT DISTINCT model FROM predictions"):
            by_model.setdefault(model, {"model": model, "versions": [], "first": None, "last": None})
        return [by_model[k] for k in sorted(by_model)]

    def series(self, model: str) -> list[dict[str, Any]]:
        """Every (role, name, version) the model has, with window count and time range."""
        rows = self._read(
            "SELECT role, name, version, COUNT(DISTINCT start), MIN(start), MAX(start + size) FROM stats "
            "WHERE model=? AND size=? GROUP BY role, name, version ORDER BY role, name, version",
            (model, self.window_sizes[0]),
        )
        return [
            {"role": r[0], "name": r[1], "version": r[2], "windows": r[3], "first": r[4], "last": r[5]} for r in rows
        ]

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

    def row_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM stats")[0][0])

    def iter_windows(self, size: int | None = None) -> Iterator[tuple[WindowKey, WindowStats]]:
        """Every stored window row (for replica merges and tests)."""
        sql = "SELECT model, version, role, name, size, start, data FROM stats"
        rows = self._read(sql + " WHERE size=?", (size,)) if size else self._read(sql)
        for r in rows:
            yield WindowKey(*r[:6]), WindowStats.from_json(r[6])


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a truncated payload is not valid JSON; give it back as sent


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class _Cursor:
    """A cursor that writes ``?`` placeholders in the dialect the driver wants."""

    def __init__(self, cur: Any, sql: Any) -> None:
        self._cur, self._sqlfix = cur, sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(self._sqlfix(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(self._sqlfix(sql), rows)

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


Storage = SqlStorage  # the interface; both engines speak it through one class


def open_storage(url: str, window_sizes: Sequence[int] = (60, 3600, 86400), **kw: Any) -> SqlStorage:
    """Open (and create) the store at ``url``: ``sqlite:///file.db`` or ``postgresql://...``."""
    if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise StorageError(f"storage URL {url!r} is neither sqlite:///... nor postgresql://...")
    return SqlStorage(url, window_sizes, **kw)
