"""OpenSLO v1 documents read as objectives (``slo.openslo: FILE`` in the processor's config).

A file holds one or more YAML documents (``---`` between them) of ``apiVersion: openslo/v1``.
``SLO`` documents become :class:`~infersight.processor.slo.objectives.Objective` values, one per
entry of ``spec.objectives``; ``SLI`` documents are what an SLO's ``indicatorRef`` names;
``AlertPolicy`` and ``AlertCondition`` documents are read as burn-rate alerts (see
:func:`load_openslo`); ``DataSource`` documents may give a metric source its type;
``Service`` and ``AlertNotificationTarget`` documents are accepted and not used (notification
targets are the processor's ``alerts:`` policies and channels).

How the fields map:

=================================  ==========================================================
OpenSLO                            infersight
=================================  ==========================================================
``SLO metadata.name``              the objective's name (``NAME-OBJECTIVE`` when the SLO has
                                   several objectives: its ``name``, slugged ``displayName``
                                   or position)
``metadata.labels.model``          the model (name or glob); else ``spec.service``
``spec.timeWindow[0].duration``    the period: rolling windows only, in ``m h d w``
``spec.budgetingMethod``           ``Occurrences`` only (good events ÷ all events)
``objectives[].target``            the objective (or ``targetPercent`` ÷ 100)
``objectives[].op/value``          latency only: ``lt``/``lte`` and the bound in seconds
``annotations infersight/...``     ``per-version`` (true/false), ``min-events``, ``no-data``
=================================  ==========================================================

An SLI names an infersight SLI kind through a metric source of ``type: infersight`` whose
``spec`` gives the ``kind`` (``latency``, ``availability``, ``data_quality``,
``model_quality``) and, for latency, the ``threshold``. In a ``ratioMetric`` the kind sits on
``good`` (or ``bad``; the same objective either way) and ``total`` is the model's calls (its
spec may repeat the kind); a ``thresholdMetric`` is a latency SLI whose bound is the
objective's ``value``::

    apiVersion: openslo/v1
    kind: SLI
    metadata: {name: churn-fast}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: infersight, spec: {kind: latency, threshold: 2s}}}
        total: {metricSource: {type: infersight, spec: {kind: latency}}}
    ---
    apiVersion: openslo/v1
    kind: SLO
    metadata: {name: churn-latency, labels: {model: churn}}
    spec:
      service: churn-api
      indicatorRef: churn-fast
      timeWindow: [{duration: 30d, isRolling: true}]
      budgetingMethod: Occurrences
      objectives: [{displayName: p99 under 2 s, target: 0.99}]

An ``AlertCondition`` of ``kind: burnrate`` is one multi-window alert: ``threshold`` is its
burn-rate factor, ``lookbackWindow`` its long window, ``alertAfter`` its short window (the
burn must hold over that last stretch as well, which is how the SRE workbook's 1 h / 5 m pair
reads in OpenSLO; ``0m`` or absent: a twelfth of the long window), ``severity`` ``page`` or
``ticket``. ``alertWhenNoData`` and ``alertWhenResolved`` need no mapping: the no-data alert
and resolve notices are always on in the processor.

Everything else is refused with the file, the document, the key, the value and the fix:
calendar windows, Timeslices budgeting, raw ratios, metric sources of another type.

Example:
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "slo.yaml"
    >>> _ = p.write_text('''
    ... apiVersion: openslo/v1
    ... kind: SLO
    ... metadata: {name: churn-up}
    ... spec:
    ...   service: churn
    ...   indicator:
    ...     metadata: {name: churn-errors}
    ...     spec:
    ...       ratioMetric:
    ...         counter: true
    ...         good: {metricSource: {type: infersight, spec: {kind: availability}}}
    ...         total: {metricSource: {type: infersight, spec: {}}}
    ...   timeWindow: [{duration: 4w, isRolling: true}]
    ...   budgetingMethod: Occurrences
    ...   objectives: [{target: 0.999}]
    ... ''')
    >>> [(o.name, o.model, o.kind, o.objective, o.period) for o in read_openslo(p, "slo.openslo")]
    [('churn-up', 'churn', 'availability', 0.999, 2419200.0)]
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infersight.processor.config import ConfigError, parse_duration
from infersight.processor.slo.objectives import SLI_KINDS, BurnAlert, Objective

__all__ = ["read_openslo", "load_openslo", "OpenSLOFile", "API_VERSION", "SOURCE_TYPE"]


API_VERSION = "openslo/v1"
SOURCE_TYPE = "infersight"  # the metricSource type (or DataSource type) that names an SLI kind
_KINDS = ("SLO", "SLI", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "DataSource", "Service")
_SHORTHAND = re.compile(r"^\s*(\d+)\s*([mhdwMQY])\s*$")
_SHORT_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_OBJECTIVE_KEYS = (
    "displayName",
    "name",
    "op",
    "value",
    "target",
    "targetPercent",
    "timeSliceTarget",
    "timeSliceWindow",
    "indicator",
    "indicatorRef",
    "compositeWeight",
)
_ANNOTATION = "infersight/"


@dataclass(frozen=True)
class OpenSLOFile:
    """What one file of OpenSLO documents gives: the objectives and, per objective name, the
    burn-rate alerts of its SLO's alert policies (absent when the SLO names none)."""

    path: str
    objectives: tuple[Objective, ...]
    alerts: Mapping[str, tuple[BurnAlert, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Doc:
    index: int  # 1-based position in the file
    kind: str
    name: str
    body: Mapping[str, Any]
    where: str  # "KEY: FILE document N (KIND 'name')" for messages


def read_openslo(path: str | os.PathLike[str], key: str) -> list[Objective]:
    """The objectives of the OpenSLO v1 file at ``path`` (``key`` is the config key that named
    it, for messages); raises :class:`ConfigError` naming the file, the document, the key, the
    value and the fix. An SLO's alert policies become that objective's own burn-rate alerts
    (``Objective.alerts``, judged instead of the ``slo.alerts`` windows)."""
    got = load_openslo(path, key)
    return [replace(o, alerts=got.alerts.get(o.name, ())) for o in got.objectives]


def load_openslo(path: str | os.PathLike[str], key: str) -> OpenSLOFile:
    """Read every document of the OpenSLO v1 file at ``path``: the objectives of its ``SLO``
    documents and the burn-rate alerts of their alert policies (see the module docstring)."""
    docs = _documents(Path(path), key)
    by_kind: dict[str, dict[str, _Doc]] = {}
    for d in docs:
        seen = by_kind.setdefault(d.kind, {})
        if d.name in seen:
            raise ConfigError(
                f"{d.where}: metadata.name: {d.name!r} is also the name of document {seen[d.name].index}; "
                f"names of one kind must be unique in a file"
            )
        seen[d.name] = d
    objectives: list[Objective] = []
    alerts: dict[str, tuple[BurnAlert, ...]] = {}
    for d in docs:
        if d.kind != "SLO":
            continue
        got, burn = _slo(d, by_kind)
        objectives.extend(got)
        if burn:
            for o in got:
                alerts[o.name] = burn
    if not objectives:
        raise ConfigError(
            f"{key}: {str(path)!r} holds no document of kind SLO ({len(docs)} document(s) read); "
            f"an OpenSLO file for infersight needs at least one SLO"
        )
    return OpenSLOFile(str(path), tuple(objectives), alerts)


# -- reading documents ------------------------------------------------------------------------


def _documents(path: Path, key: str) -> list[_Doc]:
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{key}: {str(path)!r} cannot be read ({exc.strerror}); give the path of an OpenSLO v1 YAML file"
        ) from None
    try:
        raw = [d for d in yaml.safe_load_all(text)]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: {str(path)!r} is not valid YAML: {exc}") from None
    docs: list[_Doc] = []
    for i, body in enumerate(raw, start=1):
        if body is None:
            continue  # an empty document (a leading or trailing ---)
        here = f"{key}: {path} document {i}"
        if not isinstance(body, Mapping):
            raise ConfigError(f"{here}: {body!r} must be a mapping with apiVersion, kind, metadata and spec")
        version = body.get("apiVersion")
        if version != API_VERSION:
            raise ConfigError(
                f"{here}: apiVersion: {version!r} is not supported; infersight reads OpenSLO v1: "
                f"apiVersion: {API_VERSION}"
            )
        kind = body.get("kind")
        if kind not in _KINDS:
            raise ConfigError(f"{here}: kind: {kind!r} is not an OpenSLO v1 kind; one of {', '.join(_KINDS)}")
        meta = body.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{here} ({kind}): metadata.name: {name!r} is missing or empty; every document needs one")
        docs.append(_Doc(i, kind, name.strip(), body, f"{here} ({kind} {name.strip()!r})"))
    return docs


def _map(value: Any, where: str, key: str, example: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key}: {value!r} must be a mapping, e.g. {example}")
    return value


def _shorthand(value: Any, where: str, key: str) -> float:
    """Seconds of an OpenSLO duration shorthand (``5m``, ``1h``, ``30d``, ``4w``; ``s`` and
    ``ms`` accepted as well). Months, quarters and years have no fixed length: refused."""
    m = _SHORTHAND.match(value) if isinstance(value, str) else None
    if m and m.group(2) in "MQY":
        days = {"M": "30d or 28d", "Q": "90d", "Y": "365d"}[m.group(2)]
        raise ConfigError(
            f"{where}: {key}: {value!r} has no fixed length (a rolling period is a fixed number of "
            f"seconds); write it in days or weeks, e.g. {days}"
        )
    if m:
        seconds = int(m.group(1)) * _SHORT_UNITS[m.group(2)]
    else:
        try:
            seconds = parse_duration(value, key) if isinstance(value, str) else -1.0
        except ConfigError:
            seconds = -1.0
    if seconds <= 0:
        raise ConfigError(
            f"{where}: {key}: {value!r} is not a duration; write a whole number and m, h, d or w, e.g. 1h"
        )
    return seconds


# -- SLO --------------------------------------------------------------------------------------


def _slo(d: _Doc, by_kind: Mapping[str, Mapping[str, _Doc]]) -> tuple[list[Objective], tuple[BurnAlert, ...]]:
    w = d.where
    spec = _map(
        d.body.get("spec"), w, "spec", "{service: churn, indicatorRef: NAME, budgetingMethod: Occurrences, ...}"
    )
    meta = _map(d.body.get("metadata"), w, "metadata", "{name: churn-latency}")
    method = spec.get("budgetingMethod")
    if method != "Occurrences":
        raise ConfigError(
            f"{w}: spec.budgetingMethod: {method!r} is not supported; infersight counts good and bad "
            f"events over the period: write budgetingMethod: Occurrences"
        )
    model = _model(meta, spec, w)
    period = _period(spec.get("timeWindow"), w)
    kind, threshold = _indicator(spec, d, by_kind)
    extra = _annotations(meta, w)
    raw = spec.get("objectives")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{w}: spec.objectives: {raw!r} must be a non-empty list, e.g. [{{target: 0.99}}]")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{w}: spec.description: {description!r} must be text")
    out: list[Objective] = []
    names: set[str] = set()
    for i, body in enumerate(raw):
        key = f"spec.objectives[{i}]"
        ob = _map(body, w, key, "{displayName: p99, target: 0.99}")
        for k in ob:
            if k not in _OBJECTIVE_KEYS:
                raise ConfigError(f"{w}: {key}.{k}: unknown key; known in an objective: {', '.join(_OBJECTIVE_KEYS)}")
        for k in ("timeSliceTarget", "timeSliceWindow"):
            if k in ob:
                raise ConfigError(
                    f"{w}: {key}.{k}: {ob[k]!r} belongs to Timeslices budgeting, which infersight does not do; "
                    f"remove it (budgetingMethod is Occurrences)"
                )
        for k in ("indicator", "indicatorRef", "compositeWeight"):
            if k in ob:
                raise ConfigError(
                    f"{w}: {key}.{k}: composite SLOs (an indicator per objective) are not supported; "
                    f"give the SLO one spec.indicator or spec.indicatorRef"
                )
        name = d.name if len(raw) == 1 else f"{d.name}-{_suffix(ob, i)}"
        if name in names:
            raise ConfigError(f"{w}: {key}: the objective name {name!r} repeats; give each objective its own name")
        names.add(name)
        out.append(
            Objective(
                name=_objective_name(name, w, key),
                model=model,
                kind=kind,
                objective=_target(ob, w, key),
                threshold=_bound(ob, kind, threshold, w, key),
                period=period,
                description=description,
                **extra,
            )
        )
    return out, _alert_policies(spec.get("alertPolicies"), d, by_kind)


def _model(meta: Mapping[str, Any], spec: Mapping[str, Any], w: str) -> str:
    labels = meta.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise ConfigError(f"{w}: metadata.labels: {labels!r} must be a mapping, e.g. {{model: churn}}")
    if "model" in labels:
        v = labels["model"]
        if isinstance(v, list) and len(v) == 1:
            v = v[0]
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(
                f"{w}: metadata.labels.model: {v!r} must be one model name or glob, e.g. model: churn or model: 'churn-*'"
            )
        return v.strip()
    service = spec.get("service")
    if not isinstance(service, str) or not service.strip():
        raise ConfigError(
            f"{w}: spec.service: {service!r}; name the model as spec.service (the model's name in "
            f"ml.model.name) or as metadata.labels.model"
        )
    return service.strip()


def _period(value: Any, w: str) -> float | None:
    if value is None:
        return None  # the slo section's period applies
    if not isinstance(value, list) or len(value) != 1:
        raise ConfigError(
            f"{w}: spec.timeWindow: {value!r} must be a list of exactly one window, e.g. [{{duration: 30d, isRolling: true}}]"
        )
    tw = _map(value[0], w, "spec.timeWindow[0]", "{duration: 30d, isRolling: true}")
    if "calendar" in tw or tw.get("isRolling") is not True:
        raise ConfigError(
            f"{w}: spec.timeWindow[0]: {dict(tw)!r} is a calendar-aligned window; infersight judges rolling "
            f"periods only: write {{duration: 30d, isRolling: true}}"
        )
    return _shorthand(tw.get("duration"), w, "spec.timeWindow[0].duration")


def _annotations(meta: Mapping[str, Any], w: str) -> dict[str, Any]:
    ann = meta.get("annotations") or {}
    if not isinstance(ann, Mapping):
        raise ConfigError(f"{w}: metadata.annotations: {ann!r} must be a mapping of text")
    out: dict[str, Any] = {}
    known = ("per-version", "min-events", "no-data")
    for k, v in ann.items():
        if not isinstance(k, str) or not k.startswith(_ANNOTATION):
            continue
        name, key = k[len(_ANNOTATION) :], f"metadata.annotations.{k}"
        text = str(v).strip()
        if name == "per-version":
            if text.lower() not in ("true", "false"):
                raise ConfigError(f"{w}: {key}: {v!r} must be 'true' or 'false'")
            out["per_version"] = text.lower() == "true"
        elif name == "min-events":
            if not text.isdigit() or int(text) < 1:
                raise ConfigError(f"{w}: {key}: {v!r} must be a whole number, at least 1, e.g. '20'")
            out["min_events"] = int(text)
        elif name == "no-data":
            out["no_data"] = _shorthand(text, w, key)
        else:
            raise ConfigError(
                f"{w}: {key}: unknown infersight annotation; known: {', '.join(_ANNOTATION + k for k in known)}"
            )
    return out


def _suffix(ob: Mapping[str, Any], i: int) -> str:
    for k in ("name", "displayName"):
        v = ob.get(k)
        if isinstance(v, str):
            slug = re.sub(r"[^a-z0-9]+", "-", v.lower()).strip("-")
            if slug:
                return slug
    return str(i + 1)


def _objective_name(name: str, w: str, key: str) -> str:
    if "/" in name or "|" in name:
        raise ConfigError(
            f"{w}: {key}: the objective name {name!r} contains '/' or '|'; rename the SLO (metadata.name)"
        )
    return name


def _target(ob: Mapping[str, Any], w: str, key: str) -> float:
    if ("target" in ob) == ("targetPercent" in ob):
        raise ConfigError(f"{w}: {key}: give exactly one of target (e.g. 0.999) or targetPercent (e.g. 99.9)")
    k = "target" if "target" in ob else "targetPercent"
    v = ob[k]
    scale = 1.0 if k == "target" else 100.0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v / scale < 1:
        example = "0.999" if k == "target" else "99.9"
        raise ConfigError(f"{w}: {key}.{k}: {v!r} must be a number strictly between 0 and {scale:g}, e.g. {example}")
    return float(v) / scale


def _bound(ob: Mapping[str, Any], kind: str, threshold: float | None, w: str, key: str) -> float | None:
    """The latency bound of one objective: its ``value`` (with ``op`` lt or lte) or the SLI's."""
    if "op" not in ob and "value" not in ob:
        if kind == "latency" and threshold is None:
            raise ConfigError(
                f"{w}: {key}: a latency SLI needs a bound: op: lte and value: SECONDS here, or threshold: 2s "
                f"in the SLI's metricSource spec"
            )
        return threshold
    if kind != "latency":
        raise ConfigError(
            f"{w}: {key}: op/value compare a latency against a bound; this SLI is {kind}, which has none: remove op and value"
        )
    op, value = ob.get("op"), ob.get("value")
    if op not in ("lt", "lte"):
        raise ConfigError(
            f"{w}: {key}.op: {op!r}; a latency objective counts calls answered within the bound: op: lte "
            f"(lt reads the same from the histograms)"
        )
    if isinstance(value, str):
        return _shorthand(value, w, f"{key}.value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{w}: {key}.value: {value!r} must be the latency bound in seconds, e.g. 0.5 or '500ms'")
    return float(value)


# -- SLI --------------------------------------------------------------------------------------


def _indicator(spec: Mapping[str, Any], d: _Doc, by_kind: Mapping[str, Mapping[str, _Doc]]) -> tuple[str, float | None]:
    w = d.where
    if ("indicator" in spec) == ("indicatorRef" in spec):
        raise ConfigError(
            f"{w}: spec: give exactly one of indicator (an inline SLI) or indicatorRef (the name of an SLI document)"
        )
    if "indicatorRef" in spec:
        ref = spec["indicatorRef"]
        sli = by_kind.get("SLI", {}).get(ref) if isinstance(ref, str) else None
        if sli is None:
            known = ", ".join(sorted(by_kind.get("SLI", {}))) or "none"
            raise ConfigError(
                f"{w}: spec.indicatorRef: {ref!r} names no SLI document in this file (SLIs here: {known}); "
                f"add the SLI document to the file or inline it as spec.indicator"
            )
        return _sli(_map(sli.body.get("spec"), sli.where, "spec", "{ratioMetric: ...}"), sli.where, "spec", by_kind)
    inline = _map(spec["indicator"], w, "spec.indicator", "{metadata: {name: ...}, spec: {ratioMetric: ...}}")
    return _sli(
        _map(inline.get("spec"), w, "spec.indicator.spec", "{ratioMetric: ...}"), w, "spec.indicator.spec", by_kind
    )


def _sli(
    spec: Mapping[str, Any], w: str, key: str, by_kind: Mapping[str, Mapping[str, _Doc]]
) -> tuple[str, float | None]:
    if ("ratioMetric" in spec) == ("thresholdMetric" in spec):
        raise ConfigError(f"{w}: {key}: give exactly one of ratioMetric or thresholdMetric")
    if "thresholdMetric" in spec:
        tm = _map(
            spec["thresholdMetric"],
            w,
            f"{key}.thresholdMetric",
            "{metricSource: {type: infersight, spec: {kind: latency}}}",
        )
        src = _source(tm, w, f"{key}.thresholdMetric", by_kind)
        kind = _kind(src, w, f"{key}.thresholdMetric.metricSource.spec")
        if kind != "latency":
            raise ConfigError(
                f"{w}: {key}.thresholdMetric.metricSource.spec.kind: {kind!r}; a thresholdMetric compares a value "
                f"against objectives[].value, which only latency has: write a {kind} SLI as a ratioMetric"
            )
        return kind, _threshold(src, kind, w, f"{key}.thresholdMetric.metricSource.spec")
    rk = f"{key}.ratioMetric"
    rm = _map(spec["ratioMetric"], w, rk, "{counter: true, good: ..., total: ...}")
    if "raw" in rm or "rawType" in rm:
        raise ConfigError(
            f"{w}: {rk}.raw: precomputed ratios cannot be split into events; give good (or bad) and total "
            f"metric sources of type {SOURCE_TYPE}"
        )
    if ("good" in rm) == ("bad" in rm):
        raise ConfigError(f"{w}: {rk}: give exactly one of good or bad (with total)")
    side = "good" if "good" in rm else "bad"
    if "total" not in rm:
        raise ConfigError(
            f"{w}: {rk}.total: missing; total counts the model's calls: {{metricSource: {{type: {SOURCE_TYPE}, spec: {{}}}}}}"
        )
    src = _source(_map(rm[side], w, f"{rk}.{side}", "{metricSource: ...}"), w, f"{rk}.{side}", by_kind)
    kind = _kind(src, w, f"{rk}.{side}.metricSource.spec")
    total = _source(_map(rm["total"], w, f"{rk}.total", "{metricSource: ...}"), w, f"{rk}.total", by_kind)
    if "kind" in total and total["kind"] != kind:
        raise ConfigError(
            f"{w}: {rk}.total.metricSource.spec.kind: {total['kind']!r} differs from {side}'s {kind!r}; "
            f"total counts the calls of the same SLI: remove it or write {kind}"
        )
    return kind, _threshold(src, kind, w, f"{rk}.{side}.metricSource.spec")


def _source(
    holder: Mapping[str, Any], w: str, key: str, by_kind: Mapping[str, Mapping[str, _Doc]]
) -> Mapping[str, Any]:
    """The ``spec`` of an infersight metric source (its type given or from a DataSource)."""
    ms = _map(
        holder.get("metricSource"), w, f"{key}.metricSource", f"{{type: {SOURCE_TYPE}, spec: {{kind: availability}}}}"
    )
    typ = ms.get("type")
    ref = ms.get("metricSourceRef")
    if typ is None and ref is not None:
        ds = by_kind.get("DataSource", {}).get(ref) if isinstance(ref, str) else None
        if ds is None:
            raise ConfigError(
                f"{w}: {key}.metricSource.metricSourceRef: {ref!r} names no DataSource document in this file; "
                f"add it or write type: {SOURCE_TYPE}"
            )
        dspec = ds.body.get("spec")
        typ = dspec.get("type") if isinstance(dspec, Mapping) else None
    if not isinstance(typ, str) or typ.lower() != SOURCE_TYPE:
        raise ConfigError(
            f"{w}: {key}.metricSource.type: {typ!r}; infersight computes SLIs from its own telemetry: "
            f"write type: {SOURCE_TYPE} with spec {{kind: {'|'.join(SLI_KINDS)}}}"
        )
    spec = ms.get("spec", {})
    return _map(spec if spec is not None else {}, w, f"{key}.metricSource.spec", "{kind: latency, threshold: 2s}")


def _kind(src: Mapping[str, Any], w: str, key: str) -> str:
    kind = src.get("kind")
    if kind not in SLI_KINDS:
        raise ConfigError(f"{w}: {key}.kind: {kind!r} is not an infersight SLI kind; one of {', '.join(SLI_KINDS)}")
    for k in src:
        if k not in ("kind", "threshold"):
            raise ConfigError(f"{w}: {key}.{k}: unknown key; an infersight metric source takes kind and threshold")
    return str(kind)


def _threshold(src: Mapping[str, Any], kind: str, w: str, key: str) -> float | None:
    if "threshold" not in src:
        return None
    if kind != "latency":
        raise ConfigError(f"{w}: {key}.threshold: only latency SLIs take a threshold (kind is {kind}); remove it")
    v = src["threshold"]
    if isinstance(v, str):
        return _shorthand(v, w, f"{key}.threshold")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{w}: {key}.threshold: {v!r} must be a duration, e.g. 2s or 250ms (a number is seconds)")
    return float(v)


# -- alert policies ---------------------------------------------------------------------------


def _alert_policies(value: Any, d: _Doc, by_kind: Mapping[str, Mapping[str, _Doc]]) -> tuple[BurnAlert, ...]:
    if value is None:
        return ()
    w = d.where
    if not isinstance(value, list):
        raise ConfigError(f"{w}: spec.alertPolicies: {value!r} must be a list of policies or {{alertPolicyRef: NAME}}")
    out: list[BurnAlert] = []
    for i, entry in enumerate(value):
        key = f"spec.alertPolicies[{i}]"
        e = _map(entry, w, key, "{alertPolicyRef: NAME}")
        if "alertPolicyRef" in e:
            ref = e["alertPolicyRef"]
            doc = by_kind.get("AlertPolicy", {}).get(ref) if isinstance(ref, str) else None
            if doc is None:
                known = ", ".join(sorted(by_kind.get("AlertPolicy", {}))) or "none"
                raise ConfigError(
                    f"{w}: {key}.alertPolicyRef: {ref!r} names no AlertPolicy document in this file "
                    f"(policies here: {known}); add it or inline the policy"
                )
            out.extend(_policy(doc.body.get("spec"), doc.where, "spec", by_kind))
        else:
            out.extend(_policy(e.get("spec"), w, f"{key}.spec", by_kind))
    names = [a.name for a in out]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(
                f"{w}: spec.alertPolicies: two alert conditions are named {n!r}; rename one (metadata.name)"
            )
    return tuple(out)


def _policy(spec: Any, w: str, key: str, by_kind: Mapping[str, Mapping[str, _Doc]]) -> list[BurnAlert]:
    s = _map(spec, w, key, "{alertWhenBreaching: true, conditions: [{conditionRef: NAME}]}")
    if s.get("alertWhenBreaching") is False:
        return []  # a policy that never alerts on a breach adds no burn-rate alert
    conditions = s.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        raise ConfigError(
            f"{w}: {key}.conditions: {conditions!r} must be a list of one condition or {{conditionRef: NAME}}"
        )
    out: list[BurnAlert] = []
    for i, c in enumerate(conditions):
        ck = f"{key}.conditions[{i}]"
        cm = _map(c, w, ck, "{conditionRef: NAME}")
        if "conditionRef" in cm:
            ref = cm["conditionRef"]
            doc = by_kind.get("AlertCondition", {}).get(ref) if isinstance(ref, str) else None
            if doc is None:
                known = ", ".join(sorted(by_kind.get("AlertCondition", {}))) or "none"
                raise ConfigError(
                    f"{w}: {ck}.conditionRef: {ref!r} names no AlertCondition document in this file "
                    f"(conditions here: {known}); add it or inline the condition"
                )
            out.append(_condition(doc.name, doc.body.get("spec"), doc.where, "spec"))
        else:
            meta = cm.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"{w}: {ck}.metadata.name: {name!r}; an inline condition needs a name")
            out.append(_condition(name.strip(), cm.get("spec"), w, f"{ck}.spec"))
    return out


def _condition(name: str, spec: Any, w: str, key: str) -> BurnAlert:
    s = _map(
        spec,
        w,
        key,
        "{severity: page, condition: {kind: burnrate, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}}",
    )
    severity = s.get("severity")
    if severity not in ("page", "ticket"):
        raise ConfigError(
            f"{w}: {key}.severity: {severity!r}; the processor's alert policies know page and ticket: write one of them"
        )
    c = _map(
        s.get("condition"),
        w,
        f"{key}.condition",
        "{kind: burnrate, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}",
    )
    kind = c.get("kind", "burnrate")
    if kind != "burnrate":
        raise ConfigError(
            f"{w}: {key}.condition.kind: {kind!r} is not supported; infersight alerts on burn rates: kind: burnrate"
        )
    threshold = c.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ConfigError(f"{w}: {key}.condition.threshold: {threshold!r} must be a positive burn rate, e.g. 14.4")
    long = _shorthand(c.get("lookbackWindow"), w, f"{key}.condition.lookbackWindow")
    after = c.get("alertAfter")
    short = long / 12.0
    if after not in (None, "0m", "0s", "0h", 0):
        short = _shorthand(after, w, f"{key}.condition.alertAfter")
        if short >= long:
            raise ConfigError(
                f"{w}: {key}.condition.alertAfter: {after!r} is read as the short window and must be shorter "
                f"than lookbackWindow ({c.get('lookbackWindow')!r}); the SRE workbook uses a twelfth (1h and 5m)"
            )
    if "/" in name or "|" in name:
        raise ConfigError(f"{w}: metadata.name: {name!r} contains '/' or '|'; rename the condition")
    return BurnAlert(name, str(severity), long, short, factor=float(threshold))
