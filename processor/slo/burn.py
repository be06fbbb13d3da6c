"""Burn rates, alert conditions and the error budget, from good/total event counts.

Pure arithmetic on counts (no storage, no clock): :func:`judge` takes a function that returns
``(good, total)`` for any ``[start, end)`` and evaluates one objective at one instant. The same
numbers feed the findings, ``/api/slo`` and the metrics, so a burn rate there is always this
hand computation::

    burn rate = (bad ÷ total over the window) ÷ (1 - objective)

An alert fires while its long window and its short window both burn at least its factor,
and the long window holds at least ``min_events`` events (two failed requests of three in an
hour are not a page). The period's budget is checked on its own as well: a service too quiet
for any alert window to reach ``min_events`` still gets a ticket once its budget is spent.

Example:
    >>> from infersight.processor.slo.settings import parse_slo
    >>> s = parse_slo({"objectives": [{"name": "ok", "kind": "availability", "objective": "99%"}]}, "slo")
    >>> o = s.objectives[0]
    >>> counts = lambda start, end: (0.8 * (end - start), float(end - start))   # 20% errors
    >>> st = judge(o, s, counts, at=30 * 86400.0, last_event=30 * 86400.0)
    >>> round(st.windows[3600.0].burn_rate, 6), [a.name for a in st.alerts if a.firing]
    (20.0, ['fast', 'medium', 'slow', 'slowest', 'budget'])
    >>> st.budget_remaining < 0, st.time_to_exhaustion
    (True, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infersight.processor.slo.settings import BurnAlert, Objective, SLOSettings

__all__ = ["WindowCounts", "AlertState", "SLOStatus", "judge", "burn_rate", "BUDGET_ALERT"]

# The name of the period-wide check (budget spent) among an SLO's alert states.
BUDGET_ALERT = "budget"

Counts = Callable[[float, float], tuple[float, float]]


def burn_rate(good: float, total: float, objective: float) -> float:
    """How many times faster than the budget allows the events burn it (0 with no events).

    >>> round(burn_rate(990, 1000, 0.999), 9)   # 1% bad against a 0.1% budget
    10.0
    """
    if total <= 0:
        return 0.0
    return ((total - good) / total) / (1.0 - objective)


@dataclass(frozen=True)
class WindowCounts:
    """Events in the trailing window of ``seconds`` ending at the evaluation instant."""

    seconds: float
    good: float
    total: float
    objective: float

    @property
    def bad(self) -> float:
        return self.total - self.good

    @property
    def sli(self) -> float | None:
        """Share of good events (``None`` with no events)."""
        return self.good / self.total if self.total > 0 else None

    @property
    def burn_rate(self) -> float:
        return burn_rate(self.good, self.total, self.objective)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "good": self.good,
            "total": self.total,
            "bad": self.bad,
            "sli": self.sli,
            "burn_rate": self.burn_rate,
        }


@dataclass(frozen=True)
class AlertState:
    """One alert's verdict: ``firing`` when both windows burn at least ``factor`` and the long
    window has enough events; ``guarded`` when the burn rates alone would have fired it but
    the long window held fewer than ``min_events`` events."""

    name: str
    severity: str
    factor: float
    long: WindowCounts | None
    short: WindowCounts | None
    firing: bool
    guarded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "factor": self.factor,
            "long": None if self.long is None else self.long.to_dict(),
            "short": None if self.short is None else self.short.to_dict(),
            "firing": self.firing,
            "guarded": self.guarded,
        }


@dataclass(frozen=True)
class SLOStatus:
    """One objective judged at ``at`` (Unix seconds) for one version (``""``: all)."""

    objective: Objective
    version: str
    at: float
    period: WindowCounts
    windows: dict[float, WindowCounts]
    alerts: list[AlertState]
    budget_remaining: float
    time_to_exhaustion: float | None
    no_data: bool
    last_event: float | None
    min_events: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``no_data``, ``breach`` (an alert fires), ``warning`` (budget spent or an alert held
        back only by the event guard) or ``ok``."""
        if self.no_data:
            return "no_data"
        if any(a.firing for a in self.alerts):
            return "breach"
        if self.budget_remaining <= 0 and self.period.total > 0 or any(a.guarded for a in self.alerts):
            return "warning"
        return "ok"

    def firing(self, severity: str) -> list[AlertState]:
        return [a for a in self.alerts if a.firing and a.severity == severity]

    def to_dict(self) -> dict[str, Any]:
        o = self.objective
        return {
            "slo": o.name,
            "kind": o.kind,
            "objective": o.objective,
            "threshold": o.threshold,
            "version": self.version,
            "at": self.at,
            "status": self.status,
            "sli": self.period.sli,
            "period": self.period.to_dict(),
            "error_budget": {
                "remaining": self.budget_remaining,
                "allowed_bad": o.budget * self.period.total,
                "spent_bad": self.period.bad,
                "time_to_exhaustion": self.time_to_exhaustion,
            },
            "burn_rates": {_label(s): w.burn_rate for s, w in sorted(self.windows.items())},
            "windows": {_label(s): w.to_dict() for s, w in sorted(self.windows.items())},
            "alerts": [a.to_dict() for a in self.alerts],
            "no_data": self.no_data,
            "last_event": self.last_event,
            "min_events": self.min_events,
            **self.extra,
        }


def _label(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


def judge(
    o: Objective,
    settings: SLOSettings,
    counts: Counts,
    *,
    at: float,
    last_event: float | None,
    check_no_data: bool = True,
) -> SLOStatus:
    """Evaluate objective ``o`` at instant ``at``: every alert window's counts and burn rate,
    which alerts fire, the period's error budget and when it runs out at the pace of the
    shortest long window, and whether the model went silent (no event for ``no_data``
    seconds after having had events in the period)."""
    period = settings.period_of(o)
    min_events = settings.min_events_of(o)
    cache: dict[float, WindowCounts] = {}

    def window(seconds: float) -> WindowCounts:
        w = cache.get(seconds)
        if w is None:
            good, total = counts(at - seconds, at)
            w = cache[seconds] = WindowCounts(seconds, float(good), float(total), o.objective)
        return w

    whole = window(period)
    alerts: list[AlertState] = []
    own = settings.alerts_of(o)
    for a in own:
        alerts.append(_alert_state(a, settings.factor(a, period), window(a.long), window(a.short), min_events))
    allowed = o.budget * whole.total
    remaining = 1.0 - whole.bad / allowed if allowed > 0 else 1.0
    spent = remaining <= 0 and whole.total >= min_events
    alerts.append(AlertState(BUDGET_ALERT, "ticket", 1.0, whole, None, spent))
    pace_window = min((a.long for a in own), default=period)
    pace = window(pace_window).burn_rate
    if remaining <= 0:
        tte: float | None = 0.0
    elif pace > 0:
        tte = remaining * period / pace
    else:
        tte = None
    silent = check_no_data and last_event is not None and whole.total > 0 and at - last_event >= settings.no_data_of(o)
    return SLOStatus(
        objective=o,
        version="",
        at=at,
        period=whole,
        windows={s: w for s, w in cache.items() if s != period} | {period: whole},
        alerts=alerts,
        budget_remaining=remaining,
        time_to_exhaustion=tte,
        no_data=bool(silent),
        last_event=last_event,
        min_events=min_events,
    )


def _alert_state(a: BurnAlert, factor: float, long: WindowCounts, short: WindowCounts, min_events: int) -> AlertState:
    # burn >= factor written as bad >= factor × budget × total, so the hand computation and
    # this test agree exactly at the boundary (no division rounding)
    def burning(w: WindowCounts) -> bool:
        return w.total > 0 and w.bad >= factor * (1.0 - w.objective) * w.total * (1 - 1e-12)

    over = burning(long) and burning(short)
    enough = long.total >= min_events
    return AlertState(a.name, a.severity, factor, long, short, over and enough, over and not enough)


def isfinite_or_none(x: float | None) -> float | None:
    """``x`` when finite, else ``None`` (for JSON)."""
    return x if x is not None and math.isfinite(x) else None
