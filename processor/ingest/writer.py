"""The bounded ingest queue and the single writer that turns decoded requests into commits.

Receivers (gRPC and HTTP threads) decode a request, then :meth:`Ingestor.submit` it and wait
for its future; the writer thread takes every request waiting (up to a bound), converts
cumulative streams to deltas, folds the batch into windows and writes it in one transaction.
Only then are the futures resolved, so an acknowledged request is on disk. When the queue holds
``queue_points`` items, new requests are turned away at once (:class:`QueueFull`, answered as
retryable 429 / RESOURCE_EXHAUSTED) rather than buffered in memory.

A request is identified by a digest of its bytes: an exporter that retries after a lost reply
sends the same bytes, and the digest (stored in the same transaction) makes the retry a no-op.

Example:
    >>> from infersight.processor.storage import open_storage
    >>> ing = Ingestor(open_storage("sqlite:///:memory:", (60,)), window_sizes=(60,))
    >>> ing.start(); ing.stop()
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.keep import keep_items
from infersight.processor.ingest.points import Decoded
from infersight.processor.ingest.temporality import CumulativeToDelta
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage.base import Storage, WindowKey, WriteBatch

__all__ = ["Ingestor", "QueueFull", "ShuttingDown", "Outcome", "request_digest"]

log = logging.getLogger("infersight.processor")


class QueueFull(RuntimeError):
    """The ingest queue is full; the client should retry after a pause."""


class ShuttingDown(RuntimeError):
    """The processor is stopping and takes no new data."""


@dataclass
class Outcome:
    """What became of one request: rejected items (partial success) and why."""

    rejected: int = 0
    error_message: str = ""
    duplicate: bool = False


@dataclass
class _Item:
    signal: str
    decoded: Decoded
    digest: str
    size: int
    future: Future[Outcome] = field(default_factory=Future)


def request_digest(signal: str, body: bytes) -> str:
    """Identity of a request's content (``signal`` + bytes), hashed in place (a body can be as
    large as ``max_body``: no copy of it is made)."""
    h = hashlib.blake2b(signal.encode() + b"\0", digest_size=16)
    h.update(body)
    return h.hexdigest()


class Ingestor:
    """Bounded queue + one writer thread. Thread-safe :meth:`submit`."""

    def __init__(
        self,
        storage: Storage,
        *,
        window_sizes: Sequence[int],
        registry: Registry | None = None,
        queue_points: int = 2_000_000,
        commit_interval: float = 0.02,
        commit_max_requests: int = 256,
    ) -> None:
        self.storage = storage
        self.window_sizes = tuple(window_sizes)
        self.registry = registry or Registry()
        self.queue_points = queue_points
        self.commit_interval = commit_interval
        self.commit_max_requests = commit_max_requests
        self._queue: deque[_Item] = deque()
        self._queued_points = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # spans and log records kept for the request view: "all", "flagged" or "off" (see
        # ingest/keep.py); the processor sets it from the dashboard: section
        self.keep_traces = "off"
        self.converter = CumulativeToDelta()
        self.converter.load(storage.load_streams())
        self._dirty: set[WindowKey] = set()
        self._dirty_lock = threading.Lock()
        self.registry.gauge("infersight_processor_queue_points", lambda: self._queued_points)
        self.registry.gauge("infersight_processor_queue_requests", lambda: len(self._queue))

    # -- receiving side -------------------------------------------------------------------

    def submit(self, signal: str, decoded: Decoded, digest: str) -> Future[Outcome]:
        """Queue a decoded request; the future resolves once it is committed (or fails)."""
        size = max(decoded.size, 1)
        item = _Item(signal, decoded, digest, size)
        with self._cond:
            if self._stopping:
                raise ShuttingDown("the processor is shutting down")
            # A request larger than the whole queue is still taken when the queue is empty,
            # so no single request is refused forever.
            if self._queue and self._queued_points + size > self.queue_points:
                self.registry.inc("infersight_processor_queue_full_total", signal=signal)
                raise QueueFull(f"ingest queue is full ({self._queued_points} items waiting)")
            self._queue.append(item)
            self._queued_points += size
            self._cond.notify()
        return item.future

    @property
    def depth(self) -> int:
        return self._queued_points

    # -- writer side ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="infersight-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new requests, write everything already queued, then stop the writer."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def take_dirty(self) -> set[WindowKey]:
        """Window keys written since the last call (for compaction)."""
        with self._dirty_lock:
            out, self._dirty = self._dirty, set()
        return out

    def _next_batch(self) -> list[_Item]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return []
            if self.commit_interval > 0 and len(self._queue) < self.commit_max_requests and not self._stopping:
                # Linger briefly: one fsync for many concurrent requests.
                self._cond.wait(self.commit_interval)
            batch: list[_Item] = []
            while self._queue and len(batch) < self.commit_max_requests:
                batch.append(self._queue.popleft())
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                self._write(batch)
            except Exception as exc:  # the store failed: tell every waiting client to retry
                log.exception("storage write failed; %d requests answered as retryable", len(batch))
                self.registry.inc("infersight_processor_commit_errors_total")
                for item in batch:
                    _resolve(item.future, exc)
            finally:
                with self._cond:
                    self._queued_points -= sum(i.size for i in batch)

    def _write(self, batch: list[_Item]) -> None:
        seen = self.storage.seen([i.digest for i in batch])
        fresh: list[_Item] = []
        digests: set[str] = set()
        dups: list[_Item] = []
        for item in batch:
            if item.digest in seen or item.digest in digests:
                dups.append(item)
            else:
                digests.add(item.digest)
                fresh.append(item)
        metrics: list[Any] = []
        spans: list[Any] = []
        logs: list[Any] = []
        columns: list[Any] = []
        for item in fresh:
            {"metrics": metrics, "traces": spans, "logs": logs}[item.signal].extend(item.decoded.points)
            columns.extend(item.decoded.columns)
        staged: dict[str, Any] = {}
        deltas = self.converter.convert(metrics, staged)
        # Base windows only: compaction rolls them up (off the acknowledgement path).
        # Windows one exporter point makes alone come back already in their stored form.
        agg = aggregate(deltas, spans, logs, self.window_sizes[:1], columns, packed=True)
        self.storage.write(
            WriteBatch(
                agg.windows,
                agg.predictions,
                agg.feedback,
                sorted(digests),
                {k: v.to_json() for k, v in staged.items()},
                agg.outcomes,
                keep_items(spans, logs, self.keep_traces) if self.keep_traces != "off" else [],
                agg.packed,
            )
        )
        self.converter.commit(staged)
        with self._dirty_lock:
            self._dirty.update(agg.windows)
            self._dirty.update(agg.packed)
        reg = self.registry
        reg.inc("infersight_processor_commits_total")
        for name, n in agg.ignored.items():
            reg.inc("infersight_processor_ignored_total", n, kind=name.split(":", 1)[0])
        for item in fresh:
            reg.inc("infersight_processor_points_total", item.decoded.size, signal=item.signal)
            if item.decoded.rejected:
                reg.inc("infersight_processor_rejected_total", item.decoded.rejected, signal=item.signal)
            _resolve(item.future, Outcome(item.decoded.rejected, item.decoded.error_message))
        for item in dups:
            reg.inc("infersight_processor_duplicates_total", signal=item.signal)
            _resolve(item.future, Outcome(item.decoded.rejected, item.decoded.error_message, duplicate=True))


def _resolve(future: Future[Outcome], outcome: Outcome | BaseException) -> None:
    """Settle a request's future; a client that went away (cancelled future) is no error."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass
