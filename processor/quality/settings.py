"""The ``quality:`` section of the processor's config: model quality from late labels.

Every key is optional; the defaults work without any. Top-level keys are the defaults for every
model; ``models.<name>`` overrides them for one model::

    quality:
      min_labelled: 100          # fewer labelled pairs in a window: a verdict is only a warning
      baseline_windows: 24       # earlier windows (same size) a drop is measured against
      alpha: 0.01                # significance of a drop, and of a version being worse
      min_drop: 0.02             # smallest drop (absolute; relative for error metrics) worth a breach
      latency_tolerance: 0.2     # a new version's p95 latency may be this much higher
      max_age: 30d               # a version older than this gives an "age" breach (default: none)
      models:
        churn:
          task: classification   # or regression; default: inferred from the labels
          positive_label: 1      # the positive class of a two-class model
          threshold: 0.5         # a binary score at or above it predicts the positive class
          min: {accuracy: 0.9, f1: 0.8}
          max: {mae: 3.0}
          min_coverage: 0.5      # share of calls labelled, once label_wait has passed
          label_wait: 1h
          slices: [region]       # feedback attributes quality is also computed by

Example:
    >>> s = parse_quality({"min_labelled": 10, "models": {"churn": {"min": {"accuracy": 0.9}}}}, "quality")
    >>> s.for_model("churn").min["accuracy"], s.for_model("other").min_labelled
    (0.9, 10)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from infersight.processor.config import ConfigError
from infersight.processor.quality.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

__all__ = ["QualitySettings", "ModelQuality", "parse_quality", "TASKS"]

TASKS = ("auto", "classification", "regression")
_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


@dataclass(frozen=True)
class ModelQuality:
    """One model's resolved quality settings (the section's defaults merged with its entry)."""

    task: str = "auto"
    positive_label: Any = None
    threshold: float = 0.5
    min: Mapping[str, float] = field(default_factory=dict)
    max: Mapping[str, float] = field(default_factory=dict)
    min_labelled: int = 100
    baseline_windows: int = 24
    alpha: float = 0.01
    min_drop: float = 0.02
    latency_tolerance: float = 0.2
    max_age: float | None = None
    min_coverage: float | None = None
    label_wait: float = 0.0
    slices: tuple[str, ...] = ()


@dataclass(frozen=True)
class QualitySettings:
    defaults: ModelQuality = field(default_factory=ModelQuality)
    models: Mapping[str, ModelQuality] = field(default_factory=dict)

    def for_model(self, model: str) -> ModelQuality:
        return self.models.get(model, self.defaults)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(where: str, raw: Any) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw >= 0:
        return float(raw)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(raw))
    if not m:
        raise ConfigError(f"{where}: {raw!r} is not a duration: use seconds or e.g. 90s, 15m, 1h, 30d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _number(where: str, raw: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ConfigError(f"{where}: {raw!r} is not a number")
    if (lo is not None and raw < lo) or (hi is not None and raw > hi):
        raise ConfigError(f"{where}: {raw!r} is outside [{lo}, {hi}]")
    return float(raw)


def _bounds(where: str, raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {raw!r} must be a mapping of metric to value, e.g. {{accuracy: 0.9}}")
    out = {}
    for k, v in raw.items():
        if k not in _METRICS:
            raise ConfigError(f"{where}.{k}: unknown metric; use one of {', '.join(_METRICS)}")
        out[str(k)] = _number(f"{where}.{k}", v)
    return out


def _apply(base: ModelQuality, body: Mapping[str, Any], where: str, allowed: set[str]) -> ModelQuality:
    changes: dict[str, Any] = {}
    for key, raw in body.items():
        w = f"{where}.{key}"
        if key not in allowed:
            raise ConfigError(f"{w}: unknown key; valid keys are {', '.join(sorted(allowed))}")
        if key == "task":
            if raw not in TASKS:
                raise ConfigError(f"{w}: {raw!r} is not one of {', '.join(TASKS)}")
            changes[key] = raw
        elif key == "positive_label":
            changes[key] = raw
        elif key in ("min", "max"):
            changes[key] = _bounds(w, raw)
        elif key in ("threshold", "alpha", "min_drop", "min_coverage"):
            changes[key] = _number(w, raw, 0.0, 1.0) if key != "min_drop" else _number(w, raw, 0.0)
        elif key == "latency_tolerance":
            changes[key] = _number(w, raw, 0.0)
        elif key in ("min_labelled", "baseline_windows"):
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                raise ConfigError(f"{w}: {raw!r} must be a whole number of at least 1")
            changes[key] = raw
        elif key in ("max_age", "label_wait"):
            changes[key] = None if raw is None and key == "max_age" else _duration(w, raw)
        elif key == "slices":
            if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not all(isinstance(s, str) for s in raw):
                raise ConfigError(f"{w}: {raw!r} must be a list of feedback attribute names, e.g. [region]")
            changes[key] = tuple(raw)
    return replace(base, **changes)


def parse_quality(body: Mapping[str, Any], where: str) -> QualitySettings:
    """The ``quality:`` section (``{}`` when absent) → :class:`QualitySettings`; a bad key or
    value raises :class:`ConfigError` naming it and the fix."""
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where}: must be a mapping (see docs/quality.md)")
    keys = {f.name for f in fields(ModelQuality)}
    top = {k: v for k, v in body.items() if k != "models"}
    defaults = _apply(ModelQuality(), top, where, keys)
    models_raw = body.get("models") or {}
    if not isinstance(models_raw, Mapping):
        raise ConfigError(f"{where}.models: must map model names to their settings")
    models: dict[str, ModelQuality] = {}
    for name, entry in models_raw.items():
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}.models.{name}: must be a mapping of quality settings")
        models[str(name)] = _apply(defaults, entry, f"{where}.models.{name}", keys)
    return QualitySettings(defaults, models)
