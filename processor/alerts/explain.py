"""What an alert says: the moved subjects ranked, the likely cause and what to check first.

Pipeline bugs and world changes need different people: a NaN jump, a unit change or a new
category is fixed upstream of the model, a real distribution shift is confirmed with the data
owners and may need retraining. So an alert names the cause class and one plain sentence of
what to check first, built from the engine's cause hints (``Finding.cause``).

Example:
    >>> check_first("unit_change:x1000", ["amount"])
    'amount looks rescaled by a constant factor: check units in the producer (ms vs s, cents vs dollars) and recent changes to the feature pipeline.'
    >>> pick_cause_class(["world", "pipeline"])
    'pipeline'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from infersight.processor.evaluate.findings import Finding

__all__ = ["check_first", "pick_cause_class", "rank", "describe_subject", "CAUSE_CLASS_LABELS"]

# When findings of one incident disagree, the class a reader must rule out first wins: a
# pipeline bug can masquerade as every other class, a wrong version as a shift, and so on.
_PRIORITY = ("pipeline", "model_version", "stale_model", "service", "world")
CAUSE_CLASS_LABELS = {
    "pipeline": "pipeline bug (data or schema problem upstream of the model)",
    "model_version": "wrong or unexpected model version",
    "stale_model": "stale model (age since training)",
    "world": "world change (distribution shift)",
    "service": "service level (an SLO's error budget burning)",
}


def pick_cause_class(classes: Iterable[str | None]) -> str | None:
    """The class to check first among ``classes`` (``None`` when none is known)."""
    seen = {c for c in classes if c}
    for c in _PRIORITY:
        if c in seen:
            return c
    return None


def _names(subjects: Sequence[str]) -> str:
    subjects = list(dict.fromkeys(subjects))
    if not subjects:
        return "the inputs"
    if len(subjects) == 1:
        return subjects[0]
    return ", ".join(subjects[:-1]) + " and " + subjects[-1]


def check_first(cause: str | None, subjects: Sequence[str]) -> str:
    """One sentence of what to check first for a cause hint on ``subjects``."""
    who = _names(subjects)
    head = (cause or "").split(":", 1)[0]
    if head.startswith(("missing_rate_jump", "nan")):
        return (
            f"missing values jumped in {who}: check the producer or join that fills "
            f"{'it' if len(subjects) == 1 else 'them'} (a failed lookup, a default turned null) before suspecting the world."
        )
    if head.startswith("unit_change"):
        return (
            f"{who} looks rescaled by a constant factor: check units in the producer (ms vs s, cents vs dollars) "
            "and recent changes to the feature pipeline."
        )
    if head.startswith("unseen_categories"):
        return (
            f"{who} carries categories never seen in training: check whether an upstream enum, vocabulary or "
            "encoding changed, then whether the model handles the new values."
        )
    if head.startswith(("schema", "type")):
        return (
            f"the schema of {who} changed (type or shape): check the latest deploy of the client and its feature code."
        )
    if head == "no_data":
        return (
            f"{who} stopped reporting: check that the model server is up and serving, and that its OTLP "
            "exporter still reaches the processor (or the collector in front of it)."
        )
    if head == "slo_burn":
        return _SLO_CHECK.get(cause.split(":", 1)[1] if cause and ":" in cause else "", _SLO_CHECK[""])
    if head.startswith("feature_missing"):
        return f"{who} stopped arriving: check that the client still sends it and that its name did not change."
    if head.startswith(("version", "wrong_model")):
        return "check which model version is serving: a deploy, rollback or canary may route traffic to the wrong one."
    if head.startswith(("age", "stale")):
        return "the model is old relative to its data: check when it was last trained and plan a retrain."
    if head:
        return (
            f"{who} shifted in distribution: confirm with the data owners whether the population changed, "
            "and check model quality on labelled traffic before retraining."
        )
    return f"look at the recent windows of {who} in /api/models and at the evidence requests."


_SLO_CHECK = {
    "latency": (
        "calls are slower than the objective's threshold: check the latest deploy and the version serving, "
        "saturation (CPU, GPU, queueing, workers) and input sizes (ml.inference.batch_size), then the slow "
        "traces in Jaeger."
    ),
    "availability": (
        "predict calls are failing: check error.type on ml.inference.duration and the traces of failed "
        "requests, then the latest deploy of the model server and its dependencies."
    ),
    "data_quality": (
        "requests fail the input schema: check ml.schema.violations by feature and rule, and the latest "
        "deploy of the client and its feature code."
    ),
    "model_quality": (
        "labelled predictions are wrong more often than the objective allows: check the drift findings "
        "of the same model and the version serving, and whether labels themselves changed."
    ),
    "": "an SLO's error budget is burning: look at /api/slo for the windows and counts behind it.",
}


def importance(f: Finding) -> float:
    """``details["importance"]`` when given (a finite number >= 0), else 1."""
    v = f.details.get("importance") if isinstance(f.details, Mapping) else None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
        return float(v)
    return 1.0


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Most important first: severity (statistic / threshold) times importance; findings
    without numbers (e.g. ``no_data``) after those with, by subject."""
    return sorted(findings, key=lambda f: (-(f.severity * importance(f)), f.subject))


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def describe_subject(f: Finding) -> dict[str, Any]:
    """The JSON an alert carries for one moved subject."""
    return {
        "kind": f.kind,
        "subject": f.subject,
        "status": f.status,
        "statistic": _num(f.statistic),
        "threshold": _num(f.threshold),
        "p_value": _num(f.p_value),
        "severity": round(f.severity, 6),
        "importance": importance(f),
        "method": f.method,
        "cause": f.cause,
        "cause_class": f.cause_class,
        "window_start": f.window_start,
        "window_size": f.window_size,
        "since": f.since,
        **({"text": _slo_text(f)} if f.kind == "slo" else {}),
    }


def _slo_text(f: Finding) -> str:
    """``latency/page: burning 16× the budget over 1h and 18× over 5m (alert at 14.4×)``."""
    d = f.details if isinstance(f.details, Mapping) else {}
    alert = d.get("alert") if isinstance(d.get("alert"), Mapping) else None
    bits: list[str] = []
    if alert and alert.get("long") and alert.get("short"):
        lw, sw = alert["long"], alert["short"]
        bits.append(
            f"burning {lw['burn_rate']:.3g}x the budget over {_span(lw['seconds'])} and "
            f"{sw['burn_rate']:.3g}x over {_span(sw['seconds'])} (alert {alert['name']} at {alert['factor']:.3g}x; "
            f"{lw['bad']:.0f} bad of {lw['total']:.0f} events)"
        )
    elif alert and alert.get("long"):
        lw = alert["long"]
        bits.append(f"the period's budget is spent ({lw['bad']:.0f} bad of {lw['total']:.0f} events)")
    elif f.status == "no_data" and d.get("last_event") is not None:
        bits.append(f"no events for {_span(float(f.statistic))}")
    rem = d.get("budget_remaining")
    if isinstance(rem, (int, float)) and math.isfinite(rem):
        if rem >= 0:
            bits.append(f"{rem * 100:.0f}% of the error budget left")
        else:
            bits.append(f"the period's error budget overspent {1 - rem:.3g}x")
    tte = d.get("time_to_exhaustion")
    if isinstance(tte, (int, float)) and 0 < tte < math.inf:
        bits.append(f"gone in {_span(tte)} at this pace")
    return f"{f.subject}: " + "; ".join(bits) if bits else f.subject


def _span(seconds: float) -> str:
    for unit, n in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= n:
            v = seconds / n
            return f"{v:.0f}{unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f}{unit}"
    return f"{seconds:.0f}s"


def short(d: Mapping[str, Any]) -> str:
    """``age (ks 0.31 > 0.1, p=1e-09)`` for one described subject."""
    if d.get("text"):
        return str(d["text"])
    bits = []
    if d.get("statistic") is not None and d.get("threshold") is not None:
        bits.append(f"{d.get('method') or 'statistic'} {d['statistic']:.3g} > {d['threshold']:.3g}")
    if d.get("p_value") is not None:
        bits.append(f"p={d['p_value']:.2g}")
    if not bits:
        bits.append(str(d.get("status")))
    return f"{d['subject']} ({', '.join(bits)})"
