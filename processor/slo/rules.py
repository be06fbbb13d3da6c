"""The Prometheus recording and alerting rules equivalent to the ``slo:`` section, for users who
alert in Prometheus (``infersight slo-rules --config FILE``).

The rules read the metrics the SDK exports as Prometheus shows them through the OpenTelemetry
collector's ``prometheus`` exporter (dots become underscores, the unit is a suffix, histograms
are ``_bucket``/``_count``/``_sum``): every call is counted in
``ml_inference_duration_seconds_count`` and in the ``_bucket`` series of its duration, labelled
``ml_model_name`` and ``ml_model_version``; a failed call's series also carry ``error_type``,
a call whose inputs failed the schema ``ml_schema_valid="false"``. Per objective:

* good and bad events: ``availability`` bad = calls with ``error_type``; ``data_quality`` bad =
  calls with ``ml_schema_valid="false"``; ``latency`` good = the ``_bucket`` at ``le`` = the
  threshold, which must therefore be one of the SDK's bucket bounds
  (:data:`~infersight.feature_stats.DURATION_BOUNDS`, so the rule is exact; anything else is
  refused, naming the bounds around it); ``model_quality`` has no Prometheus series (labels
  reach only the processor): skipped, with a comment in the output;
* recording rules ``infersight_slo:error_ratio:rate<W>`` (bad ÷ all calls) for every alert
  window, long and short, and the period, and ``infersight_slo:error_budget:remaining``
  (``1 - error ratio over the period ÷ (1 - objective)``), each per ``ml_model_name`` with the
  labels ``slo`` and ``slo_model`` (the configured model or glob);
* one alert ``InfersightSLOBurnRate`` per burn-rate alert: both windows' burn rate (error ratio
  ÷ budget) at least the alert's factor, and at least ``min_events`` calls in the long window
  (``increase(..._count[long]) >= min_events``), labels ``severity`` (page or ticket) and
  ``slo_alert``; its value is the long window's burn rate (``$value``; the annotations name the
  factor and the windows and stay the same while the alert fires);
* ``InfersightSLOBudgetExhausted`` (ticket): the period's budget spent with at least
  ``min_events`` calls in it, and ``InfersightSLONoData`` (page): calls in the period but none
  for ``no_data``; the processor judges these the same way (``burn.judge``).

All versions of a model are judged together (the processor also judges each version on its
own; per-version views are a ``by (ml_model_version)`` away on a dashboard).

Example:
    >>> from infersight.processor.slo.settings import parse_slo
    >>> s = parse_slo({"objectives": [{"name": "up", "model": "churn", "kind": "availability",
    ...     "objective": "99.9%"}]}, "slo")
    >>> doc = prometheus_rules(s)
    >>> [r.get("record") or r["alert"] for r in doc["groups"][0]["rules"]][:3]
    ['infersight_slo:error_ratio:rate5m', 'infersight_slo:error_ratio:rate30m', 'infersight_slo:error_ratio:rate1h']
    >>> print(doc["groups"][0]["rules"][0]["expr"])
    (
      sum by (ml_model_name) (rate(ml_inference_duration_seconds_count{ml_model_name="churn", error_type!=""}[5m]))
      or 0 * sum by (ml_model_name) (rate(ml_inference_duration_seconds_count{ml_model_name="churn"}[5m]))
    )
    / sum by (ml_model_name) (rate(ml_inference_duration_seconds_count{ml_model_name="churn"}[5m]))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from infersight.processor.slo.settings import Objective, SLOSettings

__all__ = ["MetricNames", "RulesError", "prometheus_rules", "render_rules", "ERROR_RATIO", "BUDGET_REMAINING"]

ERROR_RATIO = "infersight_slo:error_ratio:rate"  # + the window, e.g. rate5m
BUDGET_REMAINING = "infersight_slo:error_budget:remaining"
BURN_ALERT, BUDGET_ALERT, NO_DATA_ALERT = "InfersightSLOBurnRate", "InfersightSLOBudgetExhausted", "InfersightSLONoData"


class RulesError(ValueError):
    """An objective that has no exact Prometheus equivalent (the message names it and the fix)."""


@dataclass(frozen=True)
class MetricNames:
    """Where the SDK's series are in Prometheus. ``namespace`` is the collector's prometheus
    exporter ``namespace`` setting (prefixed with ``_``), empty by default."""

    namespace: str = ""
    duration: str = "ml_inference_duration_seconds"
    model: str = "ml_model_name"
    error: str = "error_type"
    schema_valid: str = "ml_schema_valid"

    @property
    def count(self) -> str:
        return f"{self._prefix}{self.duration}_count"

    @property
    def bucket(self) -> str:
        return f"{self._prefix}{self.duration}_bucket"

    @property
    def _prefix(self) -> str:
        return f"{self.namespace}_" if self.namespace else ""


def prometheus_rules(settings: SLOSettings, names: MetricNames | None = None) -> dict[str, Any]:
    """The rule file (``{"groups": [...]}``, one group per objective) for ``settings``; objectives
    of kind ``model_quality`` are left out (see :func:`skipped`). Raises :class:`RulesError` for
    a latency threshold that is not one of the SDK's bucket bounds."""
    n = names or MetricNames()
    groups = []
    for o in settings.objectives:
        if o.kind == "model_quality":
            continue
        groups.append(_group(o, settings, n))
    return {"groups": groups}


def skipped(settings: SLOSettings) -> list[Objective]:
    """The objectives with no Prometheus equivalent (model quality: labels reach only the
    processor, whose ``/api/slo`` and ``ml.slo.*`` metrics cover them)."""
    return [o for o in settings.objectives if o.kind == "model_quality"]


def render_rules(settings: SLOSettings, names: MetricNames | None = None, *, source: str = "") -> str:
    """:func:`prometheus_rules` as the YAML text of a Prometheus rule file, with a header saying
    where it came from and which objectives it leaves out and why."""
    doc = prometheus_rules(settings, names)
    head = [
        "# Prometheus rules for the SLOs of " + (source or "an infersight slo: section") + ",",
        "# written by `infersight slo-rules`; regenerate them when the objectives change.",
        "# Load with rule_files: in prometheus.yml; check with `promtool check rules FILE`.",
    ]
    for o in skipped(settings):
        head.append(
            f"# Skipped: {o.name} (model {o.model}, model_quality): model quality is computed from labels "
            "that reach only the processor; see its /api/slo and the ml.slo.* metrics."
        )
    if not doc["groups"]:
        head.append("# No objective of these settings has a Prometheus equivalent.")
    return "\n".join(head) + "\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


# -- one objective ----------------------------------------------------------------------------


def _group(o: Objective, s: SLOSettings, n: MetricNames) -> dict[str, Any]:
    period = s.period_of(o)
    budget = o.budget
    min_events = s.min_events_of(o)
    windows = sorted({w for a in s.alerts_of(o) for w in (a.short, a.long)} | {period})
    sel = _model_matchers(o.model, n)
    static = {"slo": o.name, "slo_model": o.model}
    mine = f'slo="{_escape(o.name)}", slo_model="{_escape(o.model)}"'
    rules: list[dict[str, Any]] = []
    for w in windows:
        rules.append({"record": ERROR_RATIO + _dur(w), "expr": _error_ratio(o, n, sel, _dur(w)), "labels": static})
    rules.append(
        {
            "record": BUDGET_REMAINING,
            "expr": f"1 - {ERROR_RATIO}{_dur(period)}{{{mine}}} / {_num(budget)}",
            "labels": static,
        }
    )
    what = _describe(o)
    for a in s.alerts_of(o):
        factor = s.factor(a, period)
        long, short = _dur(a.long), _dur(a.short)
        expr = (
            "(\n"
            f"  {ERROR_RATIO}{long}{{{mine}}} / {_num(budget)} >= {_num(factor)}\n"
            f"  and\n"
            f"  {ERROR_RATIO}{short}{{{mine}}} / {_num(budget)} >= {_num(factor)}\n"
            ")\n"
            f"and on ({n.model})\n"
            f"  {_calls(n, sel, long)} >= {min_events}"
        )
        rules.append(
            {
                "alert": BURN_ALERT,
                "expr": expr,
                "labels": {**static, "slo_alert": a.name, "severity": a.severity},
                "annotations": {
                    "summary": (
                        f"SLO {o.name} of model {{{{ $labels.{n.model} }}}}: error budget burning at "
                        f"{_num(factor)}x or faster over {long} and {short}"
                    ),
                    "description": (
                        f"{what}. Alert {a.name} ({a.severity}) fires while the burn rates over {long} and "
                        f"{short} are both at least {_num(factor)} (error ratio {_num(factor * budget)}) and {long} "
                        f"holds at least {min_events} calls."
                    ),
                },
            }
        )
    rules.append(
        {
            "alert": BUDGET_ALERT,
            "expr": (
                f"{BUDGET_REMAINING}{{{mine}}} <= 0\n"
                f"and on ({n.model})\n"
                f"  {_calls(n, sel, _dur(period))} >= {min_events}"
            ),
            "labels": {**static, "slo_alert": "budget", "severity": "ticket"},
            "annotations": {
                "summary": f"SLO {o.name} of model {{{{ $labels.{n.model} }}}}: the error budget of {_dur(period)} is spent",
                "description": f"{what}. Bad calls over the last {_dur(period)} exceed {_num(budget)} of all calls.",
            },
        }
    )
    no_data = _dur(s.no_data_of(o))
    count = f"{n.count}{_matchers(sel)}"
    rules.append(
        {
            "alert": NO_DATA_ALERT,
            # calls seen in the period (its error ratio exists), and in the last no_data neither
            # an increase of any call counter nor a series that is new since then (the first
            # points of a new series show no increase yet)
            "expr": (
                f"group by ({n.model}) ({ERROR_RATIO}{_dur(period)}{{{mine}}})\n"
                f"unless on ({n.model})\n"
                "(\n"
                f"  {_calls(n, sel, no_data)} > 0\n"
                f"  or\n"
                f"  group by ({n.model}) ({count} unless {count} offset {no_data})\n"
                ")"
            ),
            "labels": {**static, "slo_alert": "no_data", "severity": "page"},
            "annotations": {
                "summary": f"SLO {o.name}: model {{{{ $labels.{n.model} }}}} reported no calls for {no_data}",
                "description": (
                    f"{what}. The model had calls in the last {_dur(period)} and none in the last {no_data}: "
                    "a model that stops reporting is a failure, not silence."
                ),
            },
        }
    )
    return {"name": f"infersight-slo-{_slug(o.model)}-{o.name}", "rules": rules}


def _error_ratio(o: Objective, n: MetricNames, sel: Sequence[str], w: str) -> str:
    total = f"sum by ({n.model}) (rate({n.count}{_matchers(sel)}[{w}]))"
    if o.kind == "latency":
        assert o.threshold is not None
        good = f"sum by ({n.model}) (rate({n.bucket}{_matchers([*sel, _le(o)])}[{w}]))"
        return f"(\n  {total}\n  - {good}\n)\n/ {total}"
    if o.kind == "availability":
        bad_sel = [*sel, f'{n.error}!=""']
    elif o.kind == "data_quality":
        bad_sel = [*sel, f'{n.schema_valid}="false"']
    else:  # pragma: no cover - model_quality is skipped by the caller
        raise RulesError(f"objective {o.name!r}: kind {o.kind!r} has no Prometheus series")
    bad = f"sum by ({n.model}) (rate({n.count}{_matchers(bad_sel)}[{w}]))"
    # no series of bad calls at all is an error ratio of 0, not a missing one
    return f"(\n  {bad}\n  or 0 * {total}\n)\n/ {total}"


def _calls(n: MetricNames, sel: Sequence[str], w: str) -> str:
    return f"sum by ({n.model}) (increase({n.count}{_matchers(sel)}[{w}]))"


def _le(o: Objective) -> str:
    """The ``le`` matcher of the bucket at the threshold (``le="2.5"``; a whole number matches
    both spellings, ``1`` and ``1.0``, which Prometheus 2 and 3 write differently)."""
    from infersight.feature_stats import DURATION_BOUNDS

    t = o.threshold
    assert t is not None
    for b in DURATION_BOUNDS:
        if abs(b - t) <= 1e-9 * b:
            text = _num(b)
            if float(b).is_integer():
                return f'le=~"{int(b)}|{int(b)}\\\\.0"'
            return f'le="{text}"'
    below = [b for b in DURATION_BOUNDS if b < t]
    above = [b for b in DURATION_BOUNDS if b > t]
    near = ", ".join(f"{_num(b)}s" for b in ([below[-1]] if below else []) + ([above[0]] if above else []))
    raise RulesError(
        f"objective {o.name!r} (model {o.model}): latency threshold {_num(t)}s is not a bucket bound of the SDK's "
        f"duration histogram, so Prometheus cannot count the calls under it exactly; use one of "
        f"{', '.join(f'{_num(b)}s' for b in DURATION_BOUNDS)} (nearest: {near})"
    )


def _describe(o: Objective) -> str:
    pct = f"{_num(o.objective * 100)}%"
    if o.kind == "latency":
        assert o.threshold is not None
        return f"Objective: {pct} of calls of {o.model} answered within {_num(o.threshold)}s"
    if o.kind == "availability":
        return f"Objective: {pct} of calls of {o.model} without an error"
    return f"Objective: {pct} of calls of {o.model} with inputs that pass the schema"


# -- PromQL text ------------------------------------------------------------------------------


def _model_matchers(model: str, n: MetricNames) -> list[str]:
    if model == "*":
        return []
    if not any(c in model for c in "*?["):
        return [f'{n.model}="{_escape(model)}"']
    return [f'{n.model}=~"{_escape(_glob_regex(model))}"']


def _glob_regex(glob: str) -> str:
    """A shell glob as an RE2 pattern (PromQL anchors it at both ends)."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in glob[i + 2 :]:
            j = glob.index("]", i + 2)
            body = glob[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _matchers(sel: Sequence[str]) -> str:
    return "{" + ", ".join(sel) + "}" if sel else ""


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(x: float) -> str:
    """A number as short as it reads exactly: 14.4, 0.001, 20."""
    text = repr(float(x))
    if "e" not in text:
        text = f"{float(x):.12g}"
    return text[:-2] if text.endswith(".0") else text


def _dur(seconds: float) -> str:
    """A Prometheus duration: 5m, 1h, 30d, 90s, 1500ms."""
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "all"


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper writing multi-line strings (PromQL) as literal blocks, and shared
    label mappings in full (no ``&id001`` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)
