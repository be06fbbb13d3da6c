"""The ``slo:`` section of the processor's config: objectives, the burn-rate alert windows and
the guards against paging on too little traffic.

An SLO is an objective on the share of *good events* among all events of a model over a
rolling period (30 days by default): requests answered under a latency threshold, requests
answered without an error, requests whose inputs passed the schema, labelled predictions that
were right. The error budget is the share of bad events the objective allows
(``1 - objective``); a burn rate is how many times faster than "exactly the budget over the
period" a window spends it. Alerts follow the multi-window, multi-burn-rate scheme of the SRE
workbook: each alert has a long and a short window and fires while both burn faster than its
factor, the factor derived from the share of the budget it guards (``budget``) as
``budget × period ÷ long window`` (2% of 30 days in 1 h is 14.4×)::

    slo:
      period: 30d               # 28d works the same; factors are derived from it
      min_events: 20            # a long window with fewer events never fires
      no_data: 15m              # silence this long after traffic is an alert of its own
      alerts:                   # the default: the SRE workbook's four
        - {name: fast, severity: page, long: 1h, short: 5m, budget: 2%}
        - {name: medium, severity: page, long: 6h, short: 30m, budget: 5%}
        - {name: slow, severity: ticket, long: 1d, short: 2h, budget: 10%}
        - {name: slowest, severity: ticket, long: 3d, short: 6h, budget: 10%}
      objectives:
        - {name: latency, model: churn, kind: latency, threshold: 2s, objective: 99%}
        - {name: availability, model: "*", kind: availability, objective: 99.9%}
        - {name: valid-inputs, model: churn, kind: data_quality, objective: 99.5%}
        - {name: accuracy, model: churn, kind: model_quality, objective: 90%}

Each objective is judged for all versions of the model together and, with ``per_version``
(default true), for every version on its own: a canary's burn is not averaged away.

Example:
    >>> s = parse_slo({"objectives": [{"name": "lat", "model": "churn", "kind": "latency",
    ...     "threshold": "250ms", "objective": "99%"}]}, "slo")
    >>> o = s.objectives[0]
    >>> o.threshold, o.objective, round(o.budget, 6)
    (0.25, 0.99, 0.01)
    >>> [(a.name, a.severity, round(s.factor(a), 2)) for a in s.alerts]
    [('fast', 'page', 14.4), ('medium', 'page', 6.0), ('slow', 'ticket', 3.0), ('slowest', 'ticket', 1.0)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infersight.processor.config import ConfigError, expect_mapping, parse_duration, reject_unknown
from infersight.processor.slo.objectives import SEVERITIES, SLI_KINDS, BurnAlert, Objective

__all__ = [
    "SLOSettings",
    "Objective",
    "BurnAlert",
    "parse_slo",
    "check_config",
    "SLI_KINDS",
    "DEFAULT_ALERTS",
    "DEFAULT_MIN_EVENTS",
]

# Fewer events than this in an alert's long window never fire it: two failed requests of three
# in an hour are not a page. The ticket windows (1 d, 3 d) gather enough events at low traffic,
# and the period's budget check (``budget_exhausted``) catches a service too quiet even for them.
DEFAULT_MIN_EVENTS = 20
DEFAULT_PERIOD = 30 * 86400.0
DEFAULT_NO_DATA = 900.0

_OBJECTIVE_KEYS = (
    "name",
    "model",
    "kind",
    "objective",
    "threshold",
    "per_version",
    "period",
    "min_events",
    "no_data",
    "description",
)
_ALERT_KEYS = ("name", "severity", "long", "short", "budget", "factor")
_TOP_KEYS = ("period", "min_events", "no_data", "alerts", "objectives", "openslo")


DEFAULT_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert("fast", "page", 3600.0, 300.0, budget=0.02),
    BurnAlert("medium", "page", 6 * 3600.0, 1800.0, budget=0.05),
    BurnAlert("slow", "ticket", 86400.0, 2 * 3600.0, budget=0.10),
    BurnAlert("slowest", "ticket", 3 * 86400.0, 6 * 3600.0, budget=0.10),
)


@dataclass(frozen=True)
class SLOSettings:
    """The parsed ``slo:`` section (see the module docstring for the YAML)."""

    objectives: tuple[Objective, ...] = ()
    alerts: tuple[BurnAlert, ...] = DEFAULT_ALERTS
    period: float = DEFAULT_PERIOD
    min_events: int = DEFAULT_MIN_EVENTS
    no_data: float = DEFAULT_NO_DATA
    # where objectives read from OpenSLO documents came from (for messages)
    sources: tuple[str, ...] = field(default_factory=tuple)

    def for_model(self, model: str) -> list[Objective]:
        return [o for o in self.objectives if o.matches(model)]

    def period_of(self, o: Objective) -> float:
        return o.period if o.period is not None else self.period

    def min_events_of(self, o: Objective) -> int:
        return o.min_events if o.min_events is not None else self.min_events

    def no_data_of(self, o: Objective) -> float:
        return o.no_data if o.no_data is not None else self.no_data

    def alerts_of(self, o: Objective) -> tuple[BurnAlert, ...]:
        """The burn-rate alerts ``o`` is judged by: its own (from an OpenSLO alert policy), else
        the section's ``alerts``."""
        return o.alerts or self.alerts

    def factor(self, alert: BurnAlert, period: float | None = None) -> float:
        """The burn-rate factor of ``alert`` for a period of ``period`` seconds (default the
        section's): ``budget × period ÷ long``, or the explicit ``factor``."""
        if alert.factor is not None:
            return alert.factor
        assert alert.budget is not None
        return alert.budget * (self.period if period is None else period) / alert.long

    def horizon(self, o: Objective) -> float:
        """How far back an evaluation of ``o`` reads: its period or the longest alert window."""
        return max(self.period_of(o), max((a.long for a in self.alerts_of(o)), default=0.0))


# -- parsing ----------------------------------------------------------------------------------


def _seconds(value: Any, key: str) -> float:
    v = parse_duration(value, key)
    if v <= 0:
        raise ConfigError(f"{key}: {value!r} must be a positive duration, e.g. 5m, 1h, 30d")
    return v


def _share(value: Any, key: str, *, example: str) -> float:
    """A share in (0, 1): ``0.999``, ``99.9%`` or ``"99.9%"``."""
    v: Any = value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            v = float(value.strip()[:-1]) / 100.0
        except ValueError:
            v = None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 < v < 1.0:
        raise ConfigError(f"{key}: {value!r} must be a share between 0 and 1, written {example}")
    return float(v)


def _whole(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: {value!r} must be a whole number, at least {minimum}")
    return value


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value or "|" in value:
        raise ConfigError(f"{key}: {value!r} must be a non-empty name without '/' or '|', e.g. latency-p99")
    return value.strip()


def _alert(body: Any, where: str) -> BurnAlert:
    b = expect_mapping(body, where, "{name: fast, severity: page, long: 1h, short: 5m, budget: 2%}")
    reject_unknown(b, _ALERT_KEYS, where)
    for k in ("name", "severity", "long", "short"):
        if k not in b:
            raise ConfigError(f"{where}.{k}: missing; an alert needs name, severity, long, short and budget or factor")
    severity = b["severity"]
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}.severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    long, short = _seconds(b["long"], f"{where}.long"), _seconds(b["short"], f"{where}.short")
    if short >= long:
        raise ConfigError(
            f"{where}.short: {b['short']!r} must be shorter than long ({b['long']!r}); "
            "the SRE workbook uses a twelfth of it (1h and 5m)"
        )
    if ("budget" in b) == ("factor" in b):
        raise ConfigError(
            f"{where}: give exactly one of budget (the share of the period's budget the alert guards, "
            "e.g. 2%) or factor (a burn rate, e.g. 14.4)"
        )
    budget = _share(b["budget"], f"{where}.budget", example="as 2% or 0.02") if "budget" in b else None
    factor = None
    if "factor" in b:
        f = b["factor"]
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f <= 0:
            raise ConfigError(f"{where}.factor: {f!r} must be a positive number, e.g. 14.4")
        factor = float(f)
    return BurnAlert(_name(b["name"], f"{where}.name"), severity, long, short, budget, factor)


def _objective(body: Any, where: str) -> Objective:
    b = expect_mapping(body, where, "{name: latency, model: churn, kind: latency, threshold: 2s, objective: 99%}")
    reject_unknown(b, _OBJECTIVE_KEYS, where)
    for k in ("name", "kind", "objective"):
        if k not in b:
            raise ConfigError(f"{where}.{k}: missing; an objective needs name, kind and objective (and model)")
    kind = b["kind"]
    if kind not in SLI_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(SLI_KINDS)}")
    model = b.get("model", "*")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}.model: {model!r} must be a model name or a glob such as '*' or 'churn-*'")
    threshold = None
    if kind == "latency":
        if "threshold" not in b:
            raise ConfigError(f"{where}.threshold: missing; a latency objective needs a bound, e.g. threshold: 2s")
        threshold = _seconds(b["threshold"], f"{where}.threshold")
    elif "threshold" in b:
        raise ConfigError(f"{where}.threshold: only latency objectives take a threshold (kind is {kind})")
    per_version = b.get("per_version", True)
    if not isinstance(per_version, bool):
        raise ConfigError(f"{where}.per_version: {per_version!r} must be true or false")
    description = b.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description: {description!r} must be text")
    return Objective(
        name=_name(b["name"], f"{where}.name"),
        model=model,
        kind=kind,
        objective=_share(b["objective"], f"{where}.objective", example="as 99.9% or 0.999"),
        threshold=threshold,
        per_version=per_version,
        period=_seconds(b["period"], f"{where}.period") if "period" in b else None,
        min_events=_whole(b["min_events"], f"{where}.min_events", 1) if "min_events" in b else None,
        no_data=_seconds(b["no_data"], f"{where}.no_data") if "no_data" in b else None,
        description=description,
    )


def parse_slo(body: Mapping[str, Any], where: str) -> SLOSettings:
    """Parse the ``slo:`` section (``{}`` when absent: no objectives, nothing evaluated).
    ``openslo:`` names a file (or a list of files) of OpenSLO v1 documents whose ``SLO``
    objects are read as objectives (see :mod:`infersight.processor.slo.openslo`)."""
    b = expect_mapping(
        body, where, "{objectives: [{name: availability, model: churn, kind: availability, objective: 99.9%}]}"
    )
    reject_unknown(b, _TOP_KEYS, where)
    period = _seconds(b["period"], f"{where}.period") if "period" in b else DEFAULT_PERIOD
    min_events = _whole(b["min_events"], f"{where}.min_events", 1) if "min_events" in b else DEFAULT_MIN_EVENTS
    no_data = _seconds(b["no_data"], f"{where}.no_data") if "no_data" in b else DEFAULT_NO_DATA
    alerts: tuple[BurnAlert, ...] = DEFAULT_ALERTS
    if "alerts" in b:
        raw = b["alerts"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}.alerts: {raw!r} must be a non-empty list of alerts")
        alerts = tuple(_alert(a, f"{where}.alerts[{i}]") for i, a in enumerate(raw))
        _unique([a.name for a in alerts], f"{where}.alerts")
    objectives: list[Objective] = []
    raw_obj = b.get("objectives", [])
    if not isinstance(raw_obj, list):
        raise ConfigError(f"{where}.objectives: {raw_obj!r} must be a list of objectives")
    objectives.extend(_objective(o, f"{where}.objectives[{i}]") for i, o in enumerate(raw_obj))
    sources: list[str] = []
    if "openslo" in b:
        from infersight.processor.slo.openslo import read_openslo

        files = b["openslo"] if isinstance(b["openslo"], list) else [b["openslo"]]
        for i, path in enumerate(files):
            key = f"{where}.openslo" + (f"[{i}]" if isinstance(b["openslo"], list) else "")
            objectives.extend(read_openslo(path, key))
            sources.append(str(path))
    _unique(
        [f"{o.model}\x00{o.name}" for o in objectives], f"{where}.objectives", show=lambda k: k.replace("\x00", " ")
    )
    settings = SLOSettings(tuple(objectives), alerts, period, min_events, no_data, tuple(sources))
    for o in objectives:
        p = settings.period_of(o)
        for a in settings.alerts_of(o):
            if a.long > p:
                raise ConfigError(
                    f"{where}.alerts: {a.name}'s long window ({_fmt(a.long)}) is longer than the period "
                    f"of objective {o.name!r} ({_fmt(p)}); shorten the window or lengthen the period"
                )
    return settings


def _unique(names: Sequence[str], where: str, show: Any = str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"{where}: {show(n)!r} appears twice; names must be unique")
        seen.add(n)


def _fmt(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


def check_config(cfg: Any) -> None:
    """Whole-config checks: every alert window is a whole number of storage windows (burn rates
    are read from whole windows)."""
    s = cfg.sections.get("slo")
    if not isinstance(s, SLOSettings) or not s.objectives:
        return
    base = cfg.window
    for a in {a for o in s.objectives for a in s.alerts_of(o)}:
        for label, w in (("long", a.long), ("short", a.short)):
            if w % base:
                raise ConfigError(
                    f"slo.alerts: {a.name}'s {label} window {_fmt(w)} is not a whole number of storage windows "
                    f"({base}s); choose a multiple of {base}s"
                )
