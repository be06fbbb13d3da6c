"""The storage interface: what ingest writes and the API reads, whatever the engine.

Like OpenTelemetry's ``SpanExporter``, :class:`Storage` is a small abstract type; the engines
(:mod:`~infersight.processor.storage.sqlite`, :mod:`~infersight.processor.storage.postgres`)
are two of its implementations, and both share their SQL (:mod:`~infersight.processor.storage.sql`).
The records it takes and gives back are plain data, defined here so that ingest and the API
depend on this module only, never on an engine.

A stored window is keyed by :class:`WindowKey` and holds a
:class:`~infersight.stats.windows.WindowStats`, the statistics engine's own window model.

Example:
    >>> cover_range(0, 7200 + 120, (60, 3600))
    [(3600, 0, 7200), (60, 7200, 7320)]
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from infersight.stats.windows import WindowStats

__all__ = [
    "Storage",
    "StorageError",
    "WriteBatch",
    "WindowKey",
    "Prediction",
    "Feedback",
    "Outcome",
    "FEATURE",
    "OUTPUT",
    "MODEL",
    "cover_range",
    "Record",
    "Lease",
    "LeaseLost",
    "TraceItem",
    "sliced_role",
    "split_role",
]

# A window's role: a model's feature (name = ``ml.feature.name``), one of its outputs
# (name = ``ml.output.name``), or the model itself (name ``""``: latency, errors, spans, drops).
FEATURE, OUTPUT, MODEL = "feature", "output", "model"
# A slice's feature and output series (points with ``ml.slice``) are stored under the role
# ``feature@<slice key>`` / ``output@<slice key>``: queries by role keep reading all traffic,
# and a slice costs no column of its own.
_SLICE_MARK = "@"
MAX_SLICE_KEY = 200


def sliced_role(role: str, slice_key: str) -> str:
    """The stored role of ``role``'s series in slice ``slice_key`` (``role`` itself for ``""``).

    >>> sliced_role(FEATURE, "region=eu"), split_role("feature@region=eu"), split_role(OUTPUT)
    ('feature@region=eu', ('feature', 'region=eu'), ('output', ''))
    """
    return role + _SLICE_MARK + slice_key[:MAX_SLICE_KEY] if slice_key else role


def split_role(role: str) -> tuple[str, str]:
    """``(role, slice key)`` of a stored role; the key is ``""`` for all traffic."""
    base, mark, key = role.partition(_SLICE_MARK)
    return (base, key) if mark else (role, "")


class StorageError(RuntimeError):
    """The store cannot be opened or written; the message names the URL and the cause."""


class LeaseLost(StorageError):
    """A write made under a lease (:meth:`Storage.fenced`) found the lease taken by another
    replica: nothing of that transaction was committed."""


@dataclass(frozen=True)
class Lease:
    """A named, expiring claim on work shared by replicas of one store (e.g. ``model:churn``).

    ``owner`` is the holding replica's id; ``epoch`` grows by one each time the lease passes to
    another owner (a fencing token: a write checked against it fails once the lease has moved);
    ``expires`` is Unix seconds on the store's clock.
    """

    name: str
    owner: str
    epoch: int
    expires: float


class WindowKey(NamedTuple):
    model: str
    version: str
    role: str
    name: str
    size: int  # window length, seconds
    start: int  # Unix seconds, a multiple of size


@dataclass
class Prediction:
    model: str
    version: str
    request_id: str
    time_ns: int
    trace_id: str
    span_id: str
    inputs: str | None
    outputs: str | None
    truncated: bool


@dataclass
class Feedback:
    model: str
    version: str
    request_id: str
    time_ns: int
    actual: str
    # JSON object of the feedback's own attributes (``ml.feedback.*`` minus the label), e.g.
    # ``{"region": "eu"}``: what quality is sliced by. ``None`` when there are none.
    attributes: str | None = None


@dataclass
class Outcome:
    """One monitored call's prediction (every call, not only sampled payloads): what late
    labels are joined with. ``prediction`` is JSON text (``None`` when the SDK had none to
    ship or cut it for size, ``truncated``); ``rows`` is the call's batch size."""

    model: str
    version: str
    request_id: str
    time_ns: int
    trace_id: str
    span_id: str
    prediction: str | None
    rows: int = 1
    truncated: bool = False


@dataclass
class Record:
    """One evaluation-side document: a finding, an alert, a verdict, a pushed reference.

    ``kind`` names the collection (``"finding"``, ``"alert"``, ``"reference"`` ...), ``key`` is
    unique within it (a write with the same key replaces the record), ``model`` and ``time``
    (Unix seconds) are what reads filter and order by, ``body`` the JSON-able content.
    """

    kind: str
    key: str
    model: str
    time: float
    body: dict[str, Any]


@dataclass
class TraceItem:
    """One span or log record of a request, kept for the request view (``/requests/{id}``).

    ``item_id`` is unique within the trace (a span's ID; for a log record its span ID, time and
    position). ``flagged`` marks what is kept past the short "recent" horizon: an error, a
    schema violation, or a payload the SDK logged (sampled, or kept for being an outlier).
    ``body`` is the JSON-able content (name, parent, times, attributes, events ...).

    Example:
        >>> TraceItem("ab" * 16, "cd" * 8, "span", "churn", "r-1", 10**18, True, {"name": "predict churn"}).kind
        'span'
    """

    trace_id: str
    item_id: str
    kind: str  # "span" | "log"
    model: str
    request_id: str
    time_ns: int
    flagged: bool
    body: dict[str, Any]


@dataclass
class WriteBatch:
    """Everything one commit writes."""

    windows: dict[WindowKey, WindowStats] = field(default_factory=dict)
    predictions: list[Prediction] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    streams: dict[str, str] = field(default_factory=dict)  # cumulative stream key -> state JSON
    outcomes: list[Outcome] = field(default_factory=list)
    trace_items: list[TraceItem] = field(default_factory=list)  # spans and logs for the request view
    # base windows already in their stored form (codec.pack_windows; the ingest path packs the
    # windows one exporter point makes alone without a sketch object); keys not in ``windows``
    packed: dict[WindowKey, bytes] = field(default_factory=dict)


class Storage(abc.ABC):
    """Durable windowed storage. Thread-safe: the ingest writer, maintenance and API requests
    call it from their own threads.

    ``window_sizes`` are the base window first, then the roll-ups, each a multiple of the one
    before. Writes hold base windows only; :meth:`compact` builds the roll-ups.
    """

    url: str
    window_sizes: tuple[int, ...]
    feedback_ttl: float

    # -- ingest ----------------------------------------------------------------------------

    @abc.abstractmethod
    def write(self, batch: WriteBatch, now: float | None = None) -> None:
        """Store ``batch`` in one transaction; return once it is committed (durable)."""

    @abc.abstractmethod
    def seen(self, digests: Sequence[str]) -> set[str]:
        """Which request digests were already stored (a retry of an acknowledged-then-lost reply)."""

    @abc.abstractmethod
    def load_streams(self) -> list[tuple[str, str]]:
        """Every cumulative stream's persisted state: ``(key, state JSON)``."""

    # -- maintenance -----------------------------------------------------------------------

    @abc.abstractmethod
    def compact(self, keys: Iterable[WindowKey] | None = None) -> int:
        """Fold each window's rows into one and roll base windows up (``None``: every window
        that needs it); return how many windows had several rows. Answers never change."""

    @abc.abstractmethod
    def expire(
        self, now: float, retention: dict[int, float], prediction_retention: float, dedup_ttl: float
    ) -> dict[str, int]:
        """Delete what is past its keep-until time; return how many rows of each kind went."""

    # -- the API ---------------------------------------------------------------------------

    @abc.abstractmethod
    def query(
        self, model: str, role: str, name: str, start: int, end: int, version: str | None = None
    ) -> tuple[WindowStats, int]:
        """Merged statistics of one series over ``[start, end)`` and how many windows were merged."""

    def query_model(
        self, model: str, start: int, end: int, roles: Sequence[str] | None = None
    ) -> dict[tuple[str, str, str], WindowStats]:
        """Every series of ``model`` merged over ``[start, end)``, by ``(role, name, version)``
        (series with no window in the range are left out). One read for a whole model: what
        evaluation needs per window. Engines override this generic version with one query."""
        out: dict[tuple[str, str, str], WindowStats] = {}
        for s in self.series(model):
            if roles is not None and s["role"] not in roles:
                continue
            ws, n = self.query(model, s["role"], s["name"], start, end, s["version"])
            if n:
                out[(s["role"], s["name"], s["version"])] = ws
        return out

    def window_marks(self, model: str, start: int, end: int) -> dict[int, str]:
        """A token per base window of ``model`` starting in ``[start, end)`` that changes
        whenever that window's stored rows change (a late point arrived; compaction may change
        it too, without changing what the rows add up to). Windows with no rows are left out."""
        base = self.window_sizes[0]
        out: dict[int, list[str]] = {}
        for key, ws in self.iter_windows(base):
            if key.model == model and start <= key.start < end:
                sketched = sorted((n, s.count) for n, s in ws.sketches.items())
                out.setdefault(key.start, []).append(repr((key[:4], sorted(ws.counters.items()), sketched)))
        return {k: str(hash(tuple(sorted(v)))) for k, v in out.items()}

    @abc.abstractmethod
    def models(self) -> list[dict[str, Any]]:
        """Every model: ``{"model", "versions", "first", "last"}``."""

    @abc.abstractmethod
    def series(self, model: str) -> list[dict[str, Any]]:
        """Every (role, name, version) the model has, with window count and time range."""

    @abc.abstractmethod
    def prediction_counts(self, model: str) -> dict[str, int]:
        """``{"logged", "labelled", "feedback_waiting"}`` for the model."""

    @abc.abstractmethod
    def joined(
        self, model: str, start_ns: int, end_ns: int, *, labelled_only: bool = False, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Predictions in ``[start_ns, end_ns)`` with their ground truth (``actual`` ``None``
        while the label has not arrived)."""

    @abc.abstractmethod
    def outcomes(
        self, model: str, start_ns: int, end_ns: int, *, version: str | None = None, labelled_only: bool = False
    ) -> list[dict[str, Any]]:
        """Every call's outcome with prediction time in ``[start_ns, end_ns)``, joined with its
        ground truth by (model, request ID): ``{"request_id", "version", "time_ns",
        "trace_id", "span_id", "prediction", "rows", "truncated", "actual",
        "feedback_time_ns", "feedback_attributes"}`` (``actual`` ``None`` while unlabelled;
        ``prediction`` and ``actual`` parsed from JSON), oldest first."""

    @abc.abstractmethod
    def outcome_versions(self, model: str) -> dict[str, dict[str, int]]:
        """Per version of ``model``: ``{"first_ns", "last_ns", "calls"}`` over stored outcomes."""

    @abc.abstractmethod
    def iter_windows(self, size: int | None = None) -> Iterator[tuple[WindowKey, WindowStats]]:
        """Every stored window row (for replica merges and tests)."""

    @abc.abstractmethod
    def row_count(self) -> int:
        """How many window rows are stored (compaction makes it smaller)."""

    @abc.abstractmethod
    def label_counts(self, model: str, size: int, start: int, end: int) -> dict[int, int]:
        """Per window of ``size`` seconds starting in ``[start, end)``: how many of the model's
        calls (outcomes) have their label (a late label changes the count)."""

    # -- evaluation records -----------------------------------------------------------------

    @abc.abstractmethod
    def put_records(self, records: Sequence[Record]) -> None:
        """Insert or replace (by ``kind`` and ``key``) in one transaction."""

    @abc.abstractmethod
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
        """Records of ``kind`` filtered by model, exact key or key prefix, and ``[start, end)``
        on ``time``; ordered by time (oldest first unless ``newest_first``)."""

    @abc.abstractmethod
    def delete_records(self, kind: str, *, before: float | None = None, keys: Sequence[str] = ()) -> int:
        """Delete records of ``kind`` older than ``before`` and/or with the given keys."""

    # -- leases: who does shared work --------------------------------------------------------
    #
    # The generic versions keep the leases in this object (one process: it always wins); the
    # SQL engines keep them in the store's ``leases`` table so replicas of one store share them.

    _lease_lock = threading.Lock()

    def _lease_table(self) -> dict[str, Lease]:
        table: dict[str, Lease] | None = self.__dict__.get("_leases_mem")
        if table is None:
            table = self.__dict__["_leases_mem"] = {}
        return table

    def acquire_lease(self, name: str, owner: str, ttl: float, *, now: float | None = None) -> Lease | None:
        """Take (or keep) the lease ``name`` for ``owner`` until ``ttl`` seconds from now, when
        it is free, expired or already ``owner``'s; ``None`` when another owner holds it.
        ``now`` overrides the store's clock (tests)."""
        t = time.time() if now is None else now
        with self._lease_lock:
            table = self._lease_table()
            cur = table.get(name)
            if cur is not None and cur.owner != owner and cur.expires > t:
                return None
            epoch = cur.epoch if cur is not None and cur.owner == owner else (cur.epoch + 1 if cur else 1)
            lease = table[name] = Lease(name, owner, epoch, t + ttl)
            return lease

    def renew_lease(self, lease: Lease, ttl: float, *, now: float | None = None) -> Lease | None:
        """Extend ``lease`` to ``ttl`` seconds from now while it is still its owner's (same
        epoch: nobody took it meanwhile, even if it expired); ``None`` when it has moved."""
        t = time.time() if now is None else now
        with self._lease_lock:
            table = self._lease_table()
            cur = table.get(lease.name)
            if cur is None or (cur.owner, cur.epoch) != (lease.owner, lease.epoch):
                return None
            renewed = table[lease.name] = Lease(lease.name, lease.owner, lease.epoch, t + ttl)
            return renewed

    def release_lease(self, lease: Lease) -> bool:
        """Let ``lease`` go now (another owner may take it at once); ``False`` if it had moved."""
        with self._lease_lock:
            table = self._lease_table()
            cur = table.get(lease.name)
            if cur is None or (cur.owner, cur.epoch) != (lease.owner, lease.epoch):
                return False
            table[lease.name] = Lease(lease.name, lease.owner, lease.epoch, 0.0)
            return True

    def leases(self, prefix: str = "", *, now: float | None = None) -> list[Lease]:
        """The unexpired leases whose name starts with ``prefix``, by name."""
        t = time.time() if now is None else now
        with self._lease_lock:
            return sorted(
                (x for x in self._lease_table().values() if x.name.startswith(prefix) and x.expires > t),
                key=lambda x: x.name,
            )

    @contextlib.contextmanager
    def fenced(self, lease: Lease, ttl: float) -> Iterator[None]:
        """Within the block, every record write from this thread commits only while ``lease``
        is still held (and renews it for ``ttl`` seconds); otherwise it raises
        :class:`LeaseLost` and writes nothing. The generic version checks once, on entry."""
        if self.renew_lease(lease, ttl) is None:
            raise LeaseLost(f"lease {lease.name!r} (epoch {lease.epoch}) is no longer held by {lease.owner!r}")
        yield

    # -- kept spans and log records (the request view) ---------------------------------------
    # Not abstract: an engine without a trace store keeps none, and the request view then shows
    # the payload and feedback only.

    def trace_items(
        self, *, trace_id: str | None = None, request_id: str | None = None, limit: int = 5000
    ) -> list[TraceItem]:
        """Every kept item of the trace ``trace_id``, or of the traces holding an item with
        ``request_id``; oldest first."""
        return []

    def expire_trace_items(self, now: float, recent: float, retention: float, max_items: int) -> int:
        """Drop kept items: unflagged traces older than ``recent`` seconds, everything older
        than ``retention``, then the oldest past ``max_items`` (unflagged traces first)."""
        return 0

    def request_rows(self, request_id: str, model: str | None = None) -> dict[str, Any]:
        """The stored rows of one request: ``{"prediction", "outcome", "feedback"}`` (each a dict
        or ``None``), from every model or one."""
        return {"prediction": None, "outcome": None, "feedback": None}

    # -- life ------------------------------------------------------------------------------

    @abc.abstractmethod
    def ping(self) -> bool:
        """Whether the store answers (for ``/healthz``); never raises."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is not used afterwards."""


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
