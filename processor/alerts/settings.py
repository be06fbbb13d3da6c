"""The ``alerts:`` section of the processor's config: policies, routes, channels, budget.

Every key has a default, so an absent section gives a working setup: a feature (output,
metric) that breaches in :data:`DEFAULT_PERSISTENCE` consecutive windows opens one incident per
model, version, slice and policy (``inputs`` for drift and data quality, ``quality`` for
metrics on labelled traffic), announced on the ``log`` channel (a JSON line through Python
logging).

Persistence (consecutive breaching windows before an incident opens) is ``auto`` by default:
for each key and window size, the fewest windows that keep the expected false alarms of that
many subjects (features, outputs) in windows of that size under one per model per 30 days, by
:func:`infersight.stats.drift.fatigue.persistence_for` (the arithmetic is in
docs/alert-fatigue.md: 3 for a hundred features in 5-minute windows, 2 for hourly or daily
windows, 1 for a handful of daily checks). A number (``alerts.persistence`` or a policy's
``persistence``) fixes it.

Example:
    >>> s = parse_alerts({"persistence": 3, "channels": {"hook": {"type": "webhook",
    ...     "url": "http://127.0.0.1:9/alerts"}}}, "alerts")
    >>> [p.name for p in s.policies], s.policies[0].persistence, sorted(s.channels)
    (['inputs', 'quality', 'slo-page', 'slo-ticket', 'slo-no-data'], 3, ['hook'])
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from infersight.processor.config import ConfigError, expect_mapping, parse_duration, reject_unknown
from infersight.processor.evaluate.findings import KINDS, STATUSES
from infersight.stats.causes import CLASSES

__all__ = [
    "AlertSettings",
    "Policy",
    "AlertRoute",
    "ChannelSettings",
    "Budget",
    "parse_alerts",
    "DEFAULT_PERSISTENCE",
    "DEFAULT_RESOLVE_AFTER",
    "DEFAULT_COOLDOWN",
    "DEFAULT_UPDATE_EVERY",
    "SEVERITIES",
    "CAUSE_CLASSES",
    "SLO_POLICIES",
    "DEDUP_FIELDS",
]

# Consecutive breaching windows before an incident opens; 0 is "auto" (see the module docstring).
DEFAULT_PERSISTENCE = 0
# Consecutive ok windows before an open incident resolves (and a resolve notification is sent).
DEFAULT_RESOLVE_AFTER = 3
# Seconds (of window time) after a resolve during which the same key stays quiet.
DEFAULT_COOLDOWN = 3600.0
# At most one "updated" notification per this many windows of an open incident (0: never).
DEFAULT_UPDATE_EVERY = 6

SEVERITIES = ("page", "ticket", "info")
# The cause classes of infersight.stats.causes.cause_class, and "none" for findings without a
# cause hint.
CAUSE_CLASSES = (*CLASSES, "none")
# Finding fields (and the policy name) an incident's deduplication key can be made of.
DEDUP_FIELDS = ("model", "version", "slice", "policy", "kind", "subject", "window_size")
CHANNEL_TYPES = ("log", "webhook", "otlp")


@dataclass(frozen=True)
class Policy:
    """Which findings count (scope: ``models``, ``kinds``, ``subjects``; condition:
    ``statuses``, ``causes``, ``min_severity`` = statistic / threshold), how long they must
    last (``persistence`` windows) and how an incident is keyed, announced and closed."""

    name: str
    kinds: tuple[str, ...]
    statuses: tuple[str, ...] = ("breach",)
    subjects: tuple[str, ...] = ("*",)
    models: tuple[str, ...] = ("*",)
    causes: tuple[str, ...] = ()  # cause classes; empty: any
    min_severity: float = 0.0
    persistence: int = DEFAULT_PERSISTENCE
    resolve_after: int = DEFAULT_RESOLVE_AFTER
    cooldown: float = DEFAULT_COOLDOWN
    update_every: int = DEFAULT_UPDATE_EVERY
    severity: str = "ticket"
    runbook: str | None = None
    dedup: tuple[str, ...] = ("model", "version", "slice", "policy")

    def in_scope(self, model: str, kind: str, subject: str) -> bool:
        return kind in self.kinds and _glob_any(model, self.models) and _glob_any(subject, self.subjects)


_ANY = ("*",)


@dataclass(frozen=True)
class AlertRoute:
    """Send notifications matching ``models`` (globs), ``severities`` and ``kinds`` (empty:
    any) to ``channels``. A notification goes to the union of every matching route."""

    channels: tuple[str, ...]
    models: tuple[str, ...] = ("*",)
    severities: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def matches(self, model: str, severity: str, kinds: Sequence[str]) -> bool:
        return (
            _glob_any(model, self.models)
            and (not self.severities or severity in self.severities)
            and (not self.kinds or any(k in self.kinds for k in kinds))
        )


@dataclass(frozen=True)
class ChannelSettings:
    """One channel. ``log``: ``logger``. ``webhook``: ``url``, ``headers``. ``otlp``:
    ``endpoint`` (OTLP/HTTP; ``/v1/logs`` is added when the URL has no path), ``headers``,
    ``service_name``. Webhook and OTLP share the sender: ``timeout`` per attempt,
    ``retries`` after the first attempt with exponential ``backoff`` (full jitter) capped at
    ``max_backoff``, and a ``queue`` bound (the oldest is dropped when full)."""

    name: str
    type: str
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    queue: int = 1000
    logger: str = "infersight.alerts"
    service_name: str = "infersight-processor"


@dataclass(frozen=True)
class Budget:
    """At most ``max`` notifications per model per ``period`` seconds (wall clock)."""

    max: int = 20
    period: float = 86400.0


def _default_policies(persistence: int, resolve_after: int, cooldown: float, update_every: int) -> tuple[Policy, ...]:
    common: dict[str, Any] = {
        "persistence": persistence,
        "resolve_after": resolve_after,
        "cooldown": cooldown,
        "update_every": update_every,
    }
    return (
        # One incident per model for what goes into it: a new category is both a drift and a
        # data-quality finding, a unit change moves the distribution, and the reader wants one
        # message naming the features and the cause, not one per evaluator. A model or feature
        # that stopped arriving (no_data) is a pipeline problem worth a ticket too.
        Policy(
            name="inputs", kinds=("drift", "data_quality"), statuses=("breach", "no_data"), min_severity=1.0, **common
        ),
        Policy(name="quality", kinds=("quality",), **common),
        *SLO_POLICIES,
    )


# SLO alerts (kind ``slo``, findings ``<slo>/page``, ``<slo>/ticket``, ``<slo>/no_data``): the
# burn-rate windows already demand persistence (a long window) and reset fast (a short one),
# so an incident opens on the first breaching evaluation and resolves on the first ok one,
# one incident per objective. Added to a user's ``policies:`` unless one of them takes kind slo.
_SLO_COMMON: dict[str, Any] = {
    "kinds": ("slo",),
    "persistence": 1,
    "resolve_after": 1,
    "cooldown": 0.0,
    "update_every": 0,
    "dedup": ("model", "version", "slice", "policy", "subject"),
}
SLO_POLICIES = (
    Policy(name="slo-page", subjects=("*/page",), severity="page", **_SLO_COMMON),
    Policy(name="slo-ticket", subjects=("*/ticket",), severity="ticket", **_SLO_COMMON),
    Policy(name="slo-no-data", subjects=("*/no_data",), statuses=("no_data",), severity="page", **_SLO_COMMON),
)


@dataclass(frozen=True)
class AlertSettings:
    """The parsed ``alerts:`` section (see :func:`parse_alerts` for the YAML keys)."""

    policies: tuple[Policy, ...] = field(
        default_factory=lambda: _default_policies(
            DEFAULT_PERSISTENCE, DEFAULT_RESOLVE_AFTER, DEFAULT_COOLDOWN, DEFAULT_UPDATE_EVERY
        )
    )
    routes: tuple[AlertRoute, ...] = (AlertRoute(channels=("log",)),)
    channels: Mapping[str, ChannelSettings] = field(
        default_factory=lambda: {"log": ChannelSettings(name="log", type="log")}
    )
    budget: Budget = Budget()
    # model glob -> runbook text or link (a policy's runbook wins; details["runbook"] of a finding
    # comes first of all).
    runbooks: Mapping[str, str] = field(default_factory=dict)
    top_features: int = 5
    evidence: int = 10
    # e.g. "http://jaeger:16686/trace/{trace_id}": each evidence item then carries a "url"
    trace_url: str | None = None

    def runbook_for(self, model: str) -> str | None:
        for pattern, text in self.runbooks.items():
            if fnmatch.fnmatchcase(model, pattern):
                return text
        return None

    def channels_for(self, model: str, severity: str, kinds: Sequence[str]) -> tuple[str, ...]:
        out: list[str] = []
        for route in self.routes:
            if route.matches(model, severity, kinds):
                out.extend(c for c in route.channels if c not in out)
        return tuple(out)


def _glob_any(text: str, patterns: Sequence[str]) -> bool:
    return patterns == _ANY or any(fnmatch.fnmatchcase(text, p) for p in patterns)


# -- parsing ----------------------------------------------------------------------------------

_TOP_KEYS = (
    "policies",
    "routes",
    "channels",
    "budget",
    "runbooks",
    "persistence",
    "resolve_after",
    "cooldown",
    "update_every",
    "top_features",
    "evidence",
    "trace_url",
)
_POLICY_KEYS = (
    "name",
    "kinds",
    "statuses",
    "subjects",
    "models",
    "causes",
    "min_severity",
    "persistence",
    "resolve_after",
    "cooldown",
    "update_every",
    "severity",
    "runbook",
    "dedup",
)
_ROUTE_KEYS = ("channels", "models", "severities", "kinds")
_CHANNEL_KEYS = {
    "log": ("type", "logger"),
    "webhook": ("type", "url", "headers", "timeout", "retries", "backoff", "max_backoff", "queue"),
    "otlp": ("type", "endpoint", "headers", "timeout", "retries", "backoff", "max_backoff", "queue", "service_name"),
}


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: {value!r} must be a whole number >= {minimum}")
    return value


def _float(value: Any, key: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{key}: {value!r} must be a number >= {minimum}")
    return float(value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: {value!r} must be a non-empty string")
    return value


def _strings(value: Any, key: str, allowed: Sequence[str] | None = None, *, empty_ok: bool = False) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or (not items and not empty_ok):
        raise ConfigError(f"{key}: {value!r} must be a string or a non-empty list of strings")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{key}: {item!r} must be a non-empty string")
        if allowed is not None and item not in allowed:
            raise ConfigError(f"{key}: {item!r} is not one of {', '.join(allowed)}")
        out.append(item)
    return tuple(out)


def _headers(value: Any, key: str) -> dict[str, str]:
    body = expect_mapping(value, key)
    out: dict[str, str] = {}
    for name, v in body.items():
        if not isinstance(name, str) or not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ConfigError(f"{key}.{name}: {v!r} must be a string header value")
        out[name] = str(v)
    return out


def _url(value: Any, key: str) -> str:
    text = _text(value, key)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{key}: {value!r} is not an http(s) URL; write e.g. http://127.0.0.1:9000/alerts")
    return text


def _duration(value: Any, key: str) -> float:
    return parse_duration(value, key)


def _lifecycle(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The keys a policy shares with the section's defaults: persistence, resolve_after,
    update_every, cooldown (``0`` turns the cooldown off)."""
    out: dict[str, Any] = {}
    if body.get("persistence") == "auto":
        out["persistence"] = 0
        body = {k: v for k, v in body.items() if k != "persistence"}
    for key, minimum in (("persistence", 1), ("resolve_after", 1), ("update_every", 0)):
        if key in body:
            try:
                out[key] = _int(body[key], f"{where}.{key}", minimum)
            except ConfigError as exc:
                if key != "persistence":
                    raise
                raise ConfigError(f"{exc}, or auto (the fewest that keep the false-alarm budget)") from None
    if "cooldown" in body:
        c = body["cooldown"]
        out["cooldown"] = 0.0 if c in (0, "0") else _duration(c, f"{where}.cooldown")
    return out


def _policy(body: Any, where: str, defaults: Mapping[str, Any]) -> Policy:
    body = expect_mapping(body, where)
    reject_unknown(body, _POLICY_KEYS, where)
    if "name" not in body:
        raise ConfigError(f"{where}.name: missing; give each policy a name, e.g. name: drift")
    if "kinds" not in body:
        raise ConfigError(f"{where}.kinds: missing; write e.g. kinds: [drift] (one of {', '.join(KINDS)})")
    kw: dict[str, Any] = {
        "name": _text(body["name"], f"{where}.name"),
        "kinds": _strings(body["kinds"], f"{where}.kinds", KINDS),
        **defaults,
    }
    if "statuses" in body:
        kw["statuses"] = _strings(body["statuses"], f"{where}.statuses", [s for s in STATUSES if s != "ok"])
    for k in ("subjects", "models"):
        if k in body:
            kw[k] = _strings(body[k], f"{where}.{k}")
    if "causes" in body:
        kw["causes"] = _strings(body["causes"], f"{where}.causes", CAUSE_CLASSES)
    if "min_severity" in body:
        kw["min_severity"] = _float(body["min_severity"], f"{where}.min_severity", 0.0)
    kw.update(_lifecycle(body, where))
    if "severity" in body:
        if body["severity"] not in SEVERITIES:
            raise ConfigError(f"{where}.severity: {body['severity']!r} is not one of {', '.join(SEVERITIES)}")
        kw["severity"] = body["severity"]
    if "runbook" in body:
        kw["runbook"] = _text(body["runbook"], f"{where}.runbook")
    if "dedup" in body:
        dedup = _strings(body["dedup"], f"{where}.dedup", DEDUP_FIELDS)
        if "model" not in dedup:
            raise ConfigError(f"{where}.dedup: {list(dedup)!r} must include model (budgets and routes are per model)")
        kw["dedup"] = dedup
    return Policy(**kw)


def _channel(name: str, body: Any, where: str) -> ChannelSettings:
    body = expect_mapping(body, where)
    kind = body.get("type")
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"{where}.type: {kind!r} is not one of {', '.join(CHANNEL_TYPES)}; write e.g. type: webhook")
    reject_unknown(body, _CHANNEL_KEYS[kind], where)
    kw: dict[str, Any] = {"name": name, "type": kind}
    if kind == "log":
        if "logger" in body:
            kw["logger"] = _text(body["logger"], f"{where}.logger")
        return ChannelSettings(**kw)
    url_key = "url" if kind == "webhook" else "endpoint"
    if url_key not in body:
        raise ConfigError(f"{where}.{url_key}: missing; write e.g. {url_key}: http://127.0.0.1:9000")
    url = _url(body[url_key], f"{where}.{url_key}")
    if kind == "otlp" and urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + "/v1/logs"
    kw["url"] = url
    if "headers" in body:
        kw["headers"] = _headers(body["headers"], f"{where}.headers")
    for k in ("timeout", "backoff", "max_backoff"):
        if k in body:
            kw[k] = _duration(body[k], f"{where}.{k}")
    if "retries" in body:
        kw["retries"] = _int(body["retries"], f"{where}.retries", 0)
    if "queue" in body:
        kw["queue"] = _int(body["queue"], f"{where}.queue", 1)
    if "service_name" in body:
        kw["service_name"] = _text(body["service_name"], f"{where}.service_name")
    return ChannelSettings(**kw)


def parse_alerts(body: Mapping[str, Any], where: str) -> AlertSettings:
    """Parse the ``alerts:`` section (``{}`` when absent). Keys:

    ``persistence``, ``resolve_after``, ``cooldown``, ``update_every``: defaults for every
    policy; ``policies``: a list (replaces the two defaults) of ``{name, kinds, statuses,
    subjects, models, causes, min_severity, persistence, resolve_after, cooldown,
    update_every, severity, runbook, dedup}``; ``routes``: a list of ``{channels, models,
    severities, kinds}``; ``channels``: name -> ``{type: log|webhook|otlp, ...}``;
    ``budget``: ``{max, period}``; ``runbooks``: model glob -> text or link;
    ``top_features``, ``evidence``: how many of each an alert carries; ``trace_url``: a
    template with ``{trace_id}`` (e.g. Jaeger's ``http://jaeger:16686/trace/{trace_id}``).

    >>> parse_alerts({"policies": [{"name": "p", "kinds": ["drift"], "severity": "loud"}]}, "alerts")
    Traceback (most recent call last):
    ...
    infersight.processor.config.ConfigError: alerts.policies[0].severity: 'loud' is not one of page, ticket, info
    """
    body = expect_mapping(body, where)
    reject_unknown(body, _TOP_KEYS, where)
    defaults: dict[str, Any] = {
        "persistence": DEFAULT_PERSISTENCE,
        "resolve_after": DEFAULT_RESOLVE_AFTER,
        "cooldown": DEFAULT_COOLDOWN,
        "update_every": DEFAULT_UPDATE_EVERY,
        **_lifecycle(body, where),
    }
    kw: dict[str, Any] = {}

    if "policies" in body:
        raw = body["policies"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}.policies: {raw!r} must be a non-empty list of policies")
        policies = tuple(_policy(p, f"{where}.policies[{i}]", defaults) for i, p in enumerate(raw))
        names = [p.name for p in policies]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{where}.policies[{i}].name: {name!r} is used twice; policy names must be unique")
        if not any("slo" in p.kinds for p in policies):
            policies = (*policies, *(p for p in SLO_POLICIES if p.name not in names))
        kw["policies"] = policies
    else:
        kw["policies"] = _default_policies(**defaults)

    if "channels" in body:
        raw_ch = expect_mapping(body["channels"], f"{where}.channels")
        if not raw_ch:
            raise ConfigError(f"{where}.channels: empty; name at least one channel, e.g. log: {{type: log}}")
        channels = {str(n): _channel(str(n), c, f"{where}.channels.{n}") for n, c in raw_ch.items()}
    else:
        channels = {"log": ChannelSettings(name="log", type="log")}
    kw["channels"] = channels

    if "routes" in body:
        raw_r = body["routes"]
        if not isinstance(raw_r, list) or not raw_r:
            raise ConfigError(f"{where}.routes: {raw_r!r} must be a non-empty list of routes")
        routes = []
        for i, r in enumerate(raw_r):
            rw = f"{where}.routes[{i}]"
            r = expect_mapping(r, rw)
            reject_unknown(r, _ROUTE_KEYS, rw)
            if "channels" not in r:
                raise ConfigError(f"{rw}.channels: missing; write e.g. channels: [{next(iter(channels))}]")
            names_r = _strings(r["channels"], f"{rw}.channels")
            for n in names_r:
                if n not in channels:
                    raise ConfigError(f"{rw}.channels: {n!r} is not a configured channel; known: {', '.join(channels)}")
            routes.append(
                AlertRoute(
                    channels=names_r,
                    models=_strings(r["models"], f"{rw}.models") if "models" in r else ("*",),
                    severities=_strings(r["severities"], f"{rw}.severities", SEVERITIES) if "severities" in r else (),
                    kinds=_strings(r["kinds"], f"{rw}.kinds", KINDS) if "kinds" in r else (),
                )
            )
        kw["routes"] = tuple(routes)
    else:
        kw["routes"] = (AlertRoute(channels=tuple(channels)),)

    if "budget" in body:
        b = expect_mapping(body["budget"], f"{where}.budget")
        reject_unknown(b, ("max", "period"), f"{where}.budget")
        kw["budget"] = Budget(
            max=_int(b["max"], f"{where}.budget.max", 1) if "max" in b else Budget.max,
            period=_duration(b["period"], f"{where}.budget.period") if "period" in b else Budget.period,
        )
    if "runbooks" in body:
        rb = expect_mapping(body["runbooks"], f"{where}.runbooks")
        kw["runbooks"] = {str(m): _text(t, f"{where}.runbooks.{m}") for m, t in rb.items()}
    if "top_features" in body:
        kw["top_features"] = _int(body["top_features"], f"{where}.top_features", 1)
    if "evidence" in body:
        kw["evidence"] = _int(body["evidence"], f"{where}.evidence", 0)
    if "trace_url" in body:
        t = _text(body["trace_url"], f"{where}.trace_url")
        if "{trace_id}" not in t:
            raise ConfigError(
                f"{where}.trace_url: {t!r} has no {{trace_id}}; write e.g. http://jaeger:16686/trace/{{trace_id}}"
            )
        kw["trace_url"] = t
    return AlertSettings(**kw)
