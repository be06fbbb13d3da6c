"""Which models this processor replica evaluates, when several share one store.

Each replica announces itself with a lease ``replica:<id>`` and evaluates a model only while it
holds the lease ``model:<name>`` (:meth:`Storage.acquire_lease`). Leases live in the store, so
replicas behind a load-balancing exporter on one PostgreSQL database (or processes on one SQLite
file) agree on them; they expire ``ttl`` seconds after their last renewal, so the models of a
replica that died (SIGKILL, a lost host) pass to the others after at most ``ttl``.

Spread: every replica ranks the live replicas for each model by a hash of (replica, model)
(rendezvous hashing, with a bound of ceil(models / replicas) per replica so the split is even)
and claims only the models assigned to it, releasing at its next pass a model it holds but is
no longer assigned (a replica joined). Every replica computes the same assignment from the same
live replicas and models; two that briefly disagree (one has not seen a join yet) still never
evaluate one model at once: the lease decides, and the loser waits for the next pass.

Exactly once: every write the loop makes for a model runs inside :meth:`Ownership.hold`, which
fences the store's writes with the model's lease (:meth:`Storage.fenced`): each write
transaction renews the lease, and rolls back when the lease has passed to another replica. So a
replica that stalled past its lease cannot commit a verdict the new owner also commits.

Example:
    >>> from infersight.processor.storage import open_storage
    >>> store = open_storage("sqlite:///:memory:", (60,))
    >>> a, b = Ownership(store, 30, replica="a"), Ownership(store, 30, replica="b")
    >>> mine, theirs = a.claim(["churn", "fraud", "ltv"]), b.claim(["churn", "fraud", "ltv"])
    >>> sorted(mine + theirs) == ["churn", "fraud", "ltv"]  # one owner each, while b was unseen by a
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from infersight.processor.evaluate.findings import EvaluationContext, Finding
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage.base import Lease, LeaseLost, Storage

__all__ = ["Ownership", "replica_id", "MODEL_LEASE", "REPLICA_LEASE", "Failpoint", "failpoint_from_env"]

log = logging.getLogger("infersight.processor.evaluate")

MODEL_LEASE, REPLICA_LEASE = "model:", "replica:"


def replica_id() -> str:
    """A replica's id: host, process and a random part (a restarted process is a new replica).

    >>> replica_id().count(":")
    2
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _rank(replica: str, model: str) -> bytes:
    return hashlib.sha1(f"{replica}\0{model}".encode()).digest()


class Ownership:
    """Leases on models for one replica; see the module docstring.

    ``claim(models)`` (once per evaluation pass) renews this replica's presence and returns the
    models it holds now; ``hold(model)`` wraps one model's evaluation: it renews the lease and
    fences the writes of the calling thread with it (yields ``False`` when the lease is gone).
    ``on_acquire`` callbacks run with a model's name each time this replica takes a model it did
    not hold (e.g. the alert engine reloading that model's state from the store).
    """

    def __init__(
        self,
        storage: Storage,
        ttl: float,
        *,
        replica: str | None = None,
        on_acquire: Sequence[Callable[[str], object]] = (),
        registry: Registry | None = None,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"lease ttl {ttl!r} must be a positive number of seconds")
        self.storage = storage
        self.ttl = float(ttl)
        self.replica = replica or replica_id()
        self.on_acquire: list[Callable[[str], object]] = list(on_acquire)
        self.registry = registry or Registry()
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._announced = -float("inf")  # monotonic time of the last presence renewal

    def _announce(self, force: bool = False) -> None:
        """Renew this replica's presence lease (at most every quarter of the ttl unless forced)."""
        if force or time.monotonic() - self._announced > self.ttl / 4:
            self.storage.acquire_lease(REPLICA_LEASE + self.replica, self.replica, self.ttl)
            self._announced = time.monotonic()

    # -- per pass -----------------------------------------------------------------------------

    def live_replicas(self) -> list[str]:
        """Replicas whose presence lease has not expired (this one included)."""
        live = {x.name[len(REPLICA_LEASE) :] for x in self.storage.leases(REPLICA_LEASE)}
        live.add(self.replica)
        return sorted(live)

    def preferred(self, models: Sequence[str], replicas: Sequence[str]) -> list[str]:
        """The models this replica is assigned among ``replicas``: rendezvous hashing with
        bounded load. Each model goes to the replica that ranks highest for it among those
        with fewer than ceil(models / replicas) models so far (models taken in name order), so
        every replica that sees the same models and replicas computes the same even split.

        >>> from infersight.processor.storage import open_storage
        >>> o = Ownership(open_storage("sqlite:///:memory:"), 30, replica="a")
        >>> len(o.preferred([f"m{i}" for i in range(10)], ["a", "b"]))
        5
        """
        if not replicas:
            return list(models)
        cap = -(-len(models) // len(replicas))
        load = dict.fromkeys(replicas, 0)
        mine = set()
        for model in sorted(set(models)):
            for r in sorted(replicas, key=lambda r: _rank(r, model), reverse=True):
                if load[r] < cap:
                    load[r] += 1
                    if r == self.replica:
                        mine.add(model)
                    break
        return [m for m in models if m in mine]

    def claim(self, models: Sequence[str]) -> list[str]:
        """Renew presence, let go of models another live replica now ranks first, take the
        ones this replica ranks first; return the models held (in ``models`` order)."""
        with self._lock:
            self._announce(force=True)
            want = set(self.preferred(models, self.live_replicas()))
            for model in [m for m in self._held if m not in want]:
                self.storage.release_lease(self._held.pop(model))
                self.registry.inc("infersight_processor_leases_released_total")
                log.info("replica %s hands model %r over to another replica", self.replica, model)
            for model in models:
                if model not in want:
                    continue
                if model in self._held:
                    renewed = self.storage.renew_lease(self._held[model], self.ttl)
                    if renewed is not None:
                        self._held[model] = renewed
                        continue
                    del self._held[model]  # it moved while we were away: take it again below
                lease = self.storage.acquire_lease(MODEL_LEASE + model, self.replica, self.ttl)
                if lease is None:
                    continue  # the previous owner still holds it (it lets go at its next pass)
                self._held[model] = lease
                self.registry.inc("infersight_processor_leases_acquired_total")
                log.info("replica %s takes model %r (lease epoch %d)", self.replica, model, lease.epoch)
                for fn in self.on_acquire:
                    fn(model)
            return [m for m in models if m in self._held]

    @contextlib.contextmanager
    def hold(self, model: str) -> Iterator[bool]:
        """Renew ``model``'s lease and fence this thread's writes with it for the block;
        yields ``False`` (and fences nothing) when this replica does not hold it any more."""
        lease = self._held.get(model)
        renewed = self.storage.renew_lease(lease, self.ttl) if lease is not None else None
        if renewed is None:
            self._held.pop(model, None)
            yield False
            return
        self._held[model] = renewed
        self._announce()  # a long pass must not look like a dead replica
        try:
            with self.storage.fenced(renewed, self.ttl):
                yield True
        except LeaseLost:
            self._held.pop(model, None)
            self.registry.inc("infersight_processor_leases_lost_total")
            log.warning(
                "replica %s lost model %r to another replica mid-pass; its writes were rolled back", self.replica, model
            )

    def held(self) -> dict[str, Lease]:
        """The model leases held now, by model."""
        with self._lock:
            return dict(self._held)

    def release_all(self) -> None:
        """Let every lease go (a graceful stop): the other replicas take the models at once."""
        with self._lock:
            for lease in self._held.values():
                with contextlib.suppress(Exception):
                    self.storage.release_lease(lease)
            self._held.clear()
            with contextlib.suppress(Exception):
                me = self.storage.acquire_lease(REPLICA_LEASE + self.replica, self.replica, self.ttl)
                if me is not None:
                    self.storage.release_lease(me)

    def status(self) -> dict[str, Any]:
        """What ``/api/status``-style reports show: this replica, the live ones, the models held."""
        return {
            "replica": self.replica,
            "replicas": self.live_replicas(),
            "models": sorted(self.held()),
            "ttl": self.ttl,
        }


class Failpoint:
    """A test hook: an evaluator that blocks forever on one window of one model, the first time
    any replica reaches it, after writing its process id to ``flag`` (created exclusively, so
    exactly one replica stops there). Used to kill a replica mid-evaluation deterministically;
    installed only through ``INFERSIGHT_FAILPOINT_EVALUATE`` (see :func:`failpoint_from_env`).

    >>> Failpoint("churn", 120, "/tmp/x").name
    'failpoint'
    """

    name = "failpoint"

    def __init__(self, model: str, start: int, flag: str) -> None:
        self.model, self.start, self.flag = model, start, flag

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        if ctx.model != self.model or ctx.start != self.start:
            return []
        try:
            fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return []  # another replica stopped here already: evaluate normally
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        log.warning("failpoint: blocking on %s window at %s until killed", self.model, self.start)
        while True:
            time.sleep(3600)


def failpoint_from_env(value: str | None = None) -> Failpoint | None:
    """``INFERSIGHT_FAILPOINT_EVALUATE=MODEL@WINDOW_START=FLAG_FILE`` → a :class:`Failpoint`.

    >>> fp = failpoint_from_env("churn@1700000120=/tmp/flag")
    >>> (fp.model, fp.start, fp.flag)
    ('churn', 1700000120, '/tmp/flag')
    """
    text = os.environ.get("INFERSIGHT_FAILPOINT_EVALUATE") if value is None else value
    if not text:
        return None
    try:
        target, flag = text.split("=", 1)
        model, start = target.rsplit("@", 1)
        return Failpoint(model, int(start), flag)
    except ValueError:
        raise ValueError(
            f"INFERSIGHT_FAILPOINT_EVALUATE={text!r} must be MODEL@WINDOW_START=FLAG_FILE, "
            "e.g. churn@1700000120=/tmp/flag (a test hook; unset it in production)"
        ) from None
