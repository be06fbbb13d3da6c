"""Series-cardinality limits: one misbehaving client cannot fill the store.

A client that puts a request ID in ``ml.model.name`` or a user ID in ``ml.feature.name`` makes
a new series with every call; stored, each costs window rows for as long as retention keeps
them, and every evaluation reads them. :class:`SeriesLimiter` bounds three counts on the
receiving thread, before a request is queued:

* ``max_models``: distinct model names in the store, all services together;
* ``max_models_per_service``: models one service (its ``service.name`` resource attribute)
  brought into the store;
* ``max_series_per_model``: series of one model (a series is (version, role, name): one
  feature, one output, or the model's own latency and call counts, per version).

A point of a series or model beyond its bound is rejected, counted, and reported to the client
through OTLP partial success with a message naming the limit, the config key that raises it
and the model or series refused. Series and models already admitted keep flowing; so do
models a service sends that another service brought in (they add nothing to the store).
Prediction, feedback and outcome log records of a model refused by the model bounds are
refused too: the model name would leak into the store through them otherwise.

What is already stored counts: a new limiter reads the stored models at start, each model's
stored series the first time it sees the model, and which service brought each model (kept
as records of kind :data:`RECORD_KIND`, written when a model is admitted), so a restart keeps
every bound. Each processor replica keeps its own counts: replicas on one database each
admit up to the bound before seeing the others' models (until they restart).

The ``limits:`` section of the processor's config::

    limits:
      max_models: 5000              # distinct model names, all services together
      max_models_per_service: 500   # models one service (service.name) may bring
      max_series_per_model: 10000   # (version, role, name) series of one model

Example:
    >>> lim = SeriesLimiter(parse_limits({"max_series_per_model": 2}, "limits"))
    >>> [lim.admit("svc", "churn", ("1", "feature", f)) for f in ("age", "plan")]
    [None, None]
    >>> refusal = lim.admit("svc", "churn", ("1", "feature", "user-81723"))
    >>> refusal.limit
    'max_series_per_model'
    >>> lim.admit("svc", "churn", ("1", "feature", "age")) is None  # admitted series keep flowing
    True
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from infersight.processor.config import ConfigError, reject_unknown

if TYPE_CHECKING:
    from infersight.processor.selfmetrics import Registry
    from infersight.processor.storage.base import Storage

__all__ = ["LimitSettings", "parse_limits", "SeriesLimiter", "Refusal", "RECORD_KIND", "UNKNOWN_SERVICE"]

log = logging.getLogger("infersight.processor")

RECORD_KIND = "limits.model"  # one record per admitted model: key = model, body = {"service": ...}
UNKNOWN_SERVICE = "unknown_service"  # what OTel SDKs name a service without service.name

# A series of one model: (version, role, name), as WindowKey has them.
Series = tuple[str, str, str]


@dataclass(frozen=True)
class LimitSettings:
    """Cardinality bounds (see the module docstring); every one a whole number above zero."""

    max_models: int = 5000
    max_models_per_service: int = 500
    max_series_per_model: int = 10_000


def parse_limits(body: Mapping[str, Any], where: str) -> LimitSettings:
    """The ``limits:`` section (``{}`` for the defaults); :class:`ConfigError` naming the key,
    the value and the fix.

    >>> parse_limits({"max_models_per_service": 50}, "limits").max_models_per_service
    50
    >>> parse_limits({"max_models": 0}, "limits")
    Traceback (most recent call last):
    ...
    infersight.processor.config.ConfigError: limits.max_models: 0 must be a whole number above zero, e.g. 5000
    """
    known = {f.name: f.default for f in fields(LimitSettings)}
    values: dict[str, int] = {}
    reject_unknown(body, known, where)
    for key, raw in body.items():
        if not isinstance(raw, int) or isinstance(raw, bool) or raw <= 0:
            raise ConfigError(f"{where}.{key}: {raw!r} must be a whole number above zero, e.g. {known[key]}")
        values[key] = raw
    settings = LimitSettings(**values)
    if settings.max_models_per_service > settings.max_models:
        raise ConfigError(
            f"{where}.max_models_per_service: {settings.max_models_per_service} is larger than "
            f"{where}.max_models ({settings.max_models}), so it could never be reached; lower it or raise max_models"
        )
    return settings


class Refusal(NamedTuple):
    """Why a model or series was not admitted: the limit's key and the client's message."""

    limit: str
    message: str


_RAISE = "raise it in the processor's config if this is wanted"


class SeriesLimiter:
    """The counts behind :class:`LimitSettings`, checked at receive time. Thread-safe.

    :meth:`admit` answers ``None`` for an admitted series with one dict and one set lookup and
    no lock; only a series not seen before takes the lock (and, the first time a model stored
    before this process started is seen, one read of its stored series).
    """

    def __init__(
        self, settings: LimitSettings | None = None, storage: Storage | None = None, registry: Registry | None = None
    ) -> None:
        self.settings = settings or LimitSettings()
        self.storage = storage
        self.registry = registry
        self._lock = threading.Lock()
        self._brought_by: dict[str, str | None] = {}  # model -> service that brought it (None: not known)
        self._per_service: dict[str, int] = {}
        self._series: dict[str, set[Series]] = {}  # model -> admitted series (only once loaded)
        self._series_total = 0
        self._pending: list[tuple[str, str]] = []  # (model, service) admitted, not yet recorded
        # Callers' cache of what :meth:`admit` let in (admission is for good): any hashable
        # naming a series, e.g. screening's (model, version, role, name, slot, error type).
        self.admitted: set[Any] = set()
        if storage is not None:
            self._seed(storage)
        if registry is not None:
            registry.gauge("infersight_processor_limit_models", lambda: len(self._brought_by))
            registry.gauge("infersight_processor_limit_series", lambda: self._series_total)

    def _seed(self, storage: Storage) -> None:
        stored = {m["model"] for m in storage.models()}
        for rec in storage.get_records(RECORD_KIND):
            service = rec.body.get("service")
            if rec.key in stored and isinstance(service, str):
                self._brought_by[rec.key] = service
                self._per_service[service] = self._per_service.get(service, 0) + 1
        for model in stored:
            self._brought_by.setdefault(model, None)

    @property
    def models(self) -> int:
        """How many models are admitted (stored before, or admitted since)."""
        return len(self._brought_by)

    def service_models(self, service: str) -> int:
        """How many models ``service`` brought in."""
        return self._per_service.get(service, 0)

    def admit(self, service: str, model: str, series: Series | None = None) -> Refusal | None:
        """``None`` if points of ``series`` of ``model`` sent by ``service`` may be stored (and
        from now on they are counted), else why not. ``series=None`` checks the model alone
        (log records)."""
        known = self._series.get(model)
        if known is not None and (series is None or series in known):
            return None
        stored_series: set[Series] | None = None
        if known is None and self.storage is not None and model in self._brought_by:
            stored_series = self._stored_series(model)  # outside the lock: a database read
        with self._lock:
            refusal = self._admit_model(service, model, stored_series)
            if refusal is not None or series is None:
                return refusal
            known = self._series[model]
            if series in known:
                return None
            limit = self.settings.max_series_per_model
            if len(known) >= limit:
                version, role, name = series
                what = f"{role} {name!r}" if name else f"{role} series"
                return Refusal(
                    "max_series_per_model",
                    f"{what} (version {version!r}) of model {model!r} not stored: the model already has {limit} "
                    f"series (limits.max_series_per_model; {_RAISE})",
                )
            known.add(series)
            self._series_total += 1
            return None

    def _admit_model(self, service: str, model: str, stored_series: set[Series] | None) -> Refusal | None:
        if model in self._brought_by:
            if model not in self._series:
                loaded = stored_series or set()
                self._series[model] = loaded
                self._series_total += len(loaded)
            return None
        total = self.settings.max_models
        if len(self._brought_by) >= total:
            return Refusal(
                "max_models",
                f"model {model!r} from service {service!r} not stored: the processor already holds {total} models "
                f"(limits.max_models; {_RAISE})",
            )
        per_service = self.settings.max_models_per_service
        if self._per_service.get(service, 0) >= per_service:
            return Refusal(
                "max_models_per_service",
                f"model {model!r} not stored: service {service!r} already sent {per_service} models "
                f"(limits.max_models_per_service; {_RAISE})",
            )
        self._brought_by[model] = service
        self._per_service[service] = self._per_service.get(service, 0) + 1
        self._series[model] = set()
        self._pending.append((model, service))
        return None

    def _stored_series(self, model: str) -> set[Series]:
        assert self.storage is not None
        try:
            return {(s["version"], s["role"], s["name"]) for s in self.storage.series(model)}
        except Exception:  # the store is down: the model's points will fail their commit anyway
            log.warning("could not read the stored series of model %r for the cardinality limits", model)
            return set()

    def refused(self, refusal: Refusal, points: int, signal: str) -> None:
        """Count ``points`` refused for ``refusal`` (on ``/metrics``)."""
        if self.registry is not None:
            self.registry.inc("infersight_processor_limited_total", points, limit=refusal.limit, signal=signal)

    def flush(self) -> None:
        """Record which service brought each model admitted since the last call (so that a
        restart keeps the per-service bound). A failure is logged: the limits still hold in
        this process."""
        if not self._pending or self.storage is None:
            return
        from infersight.processor.storage.base import Record

        with self._lock:
            pending, self._pending = self._pending, []
        now = time.time()
        try:
            self.storage.put_records([Record(RECORD_KIND, m, m, now, {"service": s}) for m, s in pending])
        except Exception:
            log.warning("could not record which service brought %d new model(s)", len(pending), exc_info=True)
