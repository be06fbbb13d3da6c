"""The ``models:`` and ``evaluation:`` sections of the processor's config.

``models:`` maps a model name (or ``"*"``, the entry every model starts from) to how it is
evaluated; ``evaluation:`` says how often the loop looks, how long it waits for late points,
the drift policy's defaults and where findings are exported. Every key has a default, so a
processor with no config evaluates every model it sees (see docs/evaluation.md)::

    models:
      "*":
        windows: [5m, 1h]
      churn:
        reference: ./churn-reference.json      # or {past_window: 7d}
        windows: [5m, 1h, 1d]
        mode: {1d: cumulative}
        features:
          zip: {ignore: true}
          income: {method: psi, threshold: 0.25, importance: 3}
        slices: [region]
        runbook: https://wiki.example.com/runbooks/churn
    evaluation:
      interval: 15s
      lateness: 1m
      alpha: 0.001
      multivariate_min_rows: 100
      export: http://127.0.0.1:4319

Window sizes cannot be checked against the storage base window while a section is parsed
alone: :func:`check_windows` does it once the whole file is read.

Example:
    >>> m = parse_models({"churn": {"windows": ["5m", "1h"], "features": {"zip": {"ignore": True}}}}, "models")
    >>> s = m.for_model("churn")
    >>> s.windows, s.features["zip"].ignore, s.mode_for(300)
    ((300, 3600), True, 'sliding')
    >>> parse_evaluation({"lateness": "30s"}, "evaluation").lateness
    30.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from infersight.processor.config import ConfigError, expect_mapping, parse_duration, reject_unknown

__all__ = [
    "ModelsSettings",
    "ModelSettings",
    "FeatureSettings",
    "PastWindow",
    "EvaluationSettings",
    "parse_models",
    "parse_evaluation",
    "check_windows",
    "check_config",
    "MODES",
    "DEFAULT_WINDOW",
]

# sliding: each window judged on its own rows (statistics reset at the window's start);
# cumulative: each window judged on every row from the model's first stored window to the
# window's end (a slow drift adds up; a short dip is hidden).
MODES = ("sliding", "cumulative")
# Evaluation window used when a model's config names none: an hour (when it is a whole number
# of storage windows, else the storage window itself).
DEFAULT_WINDOW = 3600
# The fewest sampled rows ``multivariate_min_rows`` may ask for (the MMD test runs from 10 rows).
MULTIVARIATE_FLOOR = 10
_FEATURE_KEYS = ("method", "threshold", "alpha", "min_effect", "min_rows", "max_unseen", "min_missing_jump")
_MODEL_KEYS = ("reference", "windows", "mode", "features", "slices", "slice_cap", "runbook")


@dataclass(frozen=True)
class PastWindow:
    """A reference that is the same window ``seconds`` earlier (e.g. 7 days, for weekly cycles)."""

    seconds: int


@dataclass(frozen=True)
class FeatureSettings:
    """Per-feature overrides of the drift policy; ``importance`` only ranks, ``ignore`` skips."""

    method: str | None = None
    threshold: float | None = None
    alpha: float | None = None
    min_effect: float | None = None
    min_rows: int | None = None
    max_unseen: float | None = None
    min_missing_jump: float | None = None
    importance: float = 1.0
    ignore: bool = False

    def overrides(self) -> dict[str, Any]:
        """The keys the drift policy reads (those set)."""
        return {k: getattr(self, k) for k in _FEATURE_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class ModelSettings:
    """How one model is evaluated (its entry merged over ``"*"`` and the built-in defaults).

    ``reference``: a profile path, a :class:`PastWindow`, or ``None`` (a pushed profile if any,
    else :data:`DEFAULT_PAST` earlier). ``windows``: evaluation window sizes in seconds (empty:
    the default). ``slices``: attribute names to evaluate each value of separately, at most
    ``slice_cap`` values each.
    """

    reference: str | PastWindow | None = None
    windows: tuple[int, ...] = ()
    modes: Mapping[int, str] = field(default_factory=dict)
    features: Mapping[str, FeatureSettings] = field(default_factory=dict)
    slices: tuple[str, ...] = ()
    slice_cap: int = 20
    runbook: str | None = None

    def mode_for(self, size: int) -> str:
        return self.modes.get(size, self.modes.get(0, "sliding"))

    def feature(self, name: str) -> FeatureSettings:
        return self.features.get(name) or _NO_OVERRIDES

    def window_sizes(self, base: int) -> tuple[int, ...]:
        """The evaluation windows, or the default for a store whose base window is ``base``."""
        if self.windows:
            return self.windows
        return (DEFAULT_WINDOW,) if DEFAULT_WINDOW % base == 0 else (base,)


_NO_OVERRIDES = FeatureSettings()
# What a model with neither a pushed nor a configured reference is compared with.
DEFAULT_PAST = PastWindow(86400)


@dataclass(frozen=True)
class ModelsSettings:
    """Every ``models:`` entry by name (``"*"`` included); :meth:`for_model` resolves one."""

    models: Mapping[str, ModelSettings] = field(default_factory=dict)
    # which keys each entry set, so a model's entry overrides "*" key by key
    given: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def for_model(self, name: str) -> ModelSettings:
        """``name``'s entry over the ``"*"`` entry over the defaults (features merged by name)."""
        out = self.models.get("*", ModelSettings())
        own = self.models.get(name)
        if own is None or name == "*":
            return out
        keys = self.given.get(name, frozenset())
        changes: dict[str, Any] = {}
        for key in keys:
            if key == "features":
                changes["features"] = {**out.features, **own.features}
            elif key == "mode":
                changes["modes"] = {**out.modes, **own.modes}
            elif key != "slice_cap" or "slices" not in keys:
                changes[key] = getattr(own, key)
        if "slices" in keys:
            changes["slice_cap"] = own.slice_cap
        return replace(out, **changes)


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``evaluation:`` section; see the module docstring and docs/evaluation.md."""

    enabled: bool = True
    interval: float = 15.0
    lateness: float | None = None  # None: one storage window, at least 60 s
    backfill: float = 86400.0
    reopen: float = 3600.0
    no_data_for: float = 86400.0
    alpha: float = 0.001
    min_effect: float = 0.1
    min_effect_categorical: float = 0.05
    min_rows: int = 30
    min_missing_jump: float = 0.02
    max_unseen: float = 0.01
    max_violations: float = 0.01
    methods: Mapping[str, str] = field(default_factory=dict)
    evidence: int = 3
    export: str | None = None
    export_timeout: float = 5.0
    # the multivariate (MMD) test on sampled payload logs (:mod:`.multivariate`), and the
    # fewest sampled rows a window needs for it (fewer: a ``warning`` finding saying so)
    multivariate: bool = True
    multivariate_min_rows: int = 100
    # replicas on one store: how long a model's evaluation lease lasts without renewal (a dead
    # replica's models pass to another after at most this); None: 4 x interval, at least 60 s
    lease: float | None = None

    def lease_for(self) -> float:
        """The lease time in force: ``lease``, or 4 x ``interval`` and at least 60 s.

        >>> EvaluationSettings().lease_for(), EvaluationSettings(interval=60).lease_for()
        (60.0, 240.0)
        """
        return self.lease if self.lease is not None else max(60.0, 4 * self.interval)

    def lateness_for(self, base: int) -> float:
        return self.lateness if self.lateness is not None else float(max(base, 60))

    def policy_kwargs(self) -> dict[str, Any]:
        """The :class:`~infersight.stats.drift.DriftPolicy` settings this section sets."""
        return {
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "min_effect_categorical": self.min_effect_categorical,
            "min_rows": self.min_rows,
            "min_missing_jump": self.min_missing_jump,
            "max_unseen": self.max_unseen,
            "methods": dict(self.methods),
        }


# -- parsing -------------------------------------------------------------------------------


def _mapping(value: Any, key: str, example: str) -> Mapping[str, Any]:
    return {} if value is None else expect_mapping(value, key, example)


def _whole_seconds(value: Any, key: str) -> int:
    seconds = parse_duration(value, key)
    if seconds < 1 or seconds != int(seconds):
        raise ConfigError(f"{key}: {value!r} must be a whole number of seconds, at least 1s (e.g. 5m, 1h)")
    return int(seconds)


def _number(value: Any, key: str, *, lo: float = 0.0, hi: float = math.inf, open_lo: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} must be a number")
    v = float(value)
    if (v <= lo if open_lo else v < lo) or v > hi:
        bound = f"above {lo:g}" if open_lo else f"at least {lo:g}"
        raise ConfigError(f"{key}: {value!r} must be {bound}" + (f" and at most {hi:g}" if hi < math.inf else ""))
    return v


def _fraction(value: Any, key: str) -> float:
    return _number(value, key, lo=0.0, hi=1.0)


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}: {value!r} must be a whole number, at least 1")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} must be true or false")
    return value


def _method(value: Any, key: str, kind: str | None = None) -> str:
    from infersight.stats.drift import registry

    try:
        spec = registry.get(str(value))
    except KeyError:
        raise ConfigError(
            f"{key}: {value!r} is not a registered drift method; choose one of {', '.join(registry.names())}"
        ) from None
    if kind is not None and not spec.applies_to(kind):
        raise ConfigError(
            f"{key}: {value!r} does not apply to {kind} features; choose one of {', '.join(registry.names(kind))}"
        )
    return spec.name


def _reference(value: Any, key: str) -> str | PastWindow:
    if isinstance(value, Mapping):
        reject_unknown(value, ("past_window",), key)
        if "past_window" not in value:
            raise ConfigError(f"{key}: {dict(value)!r} must be a profile path or {{past_window: 7d}}")
        return PastWindow(_whole_seconds(value["past_window"], f"{key}.past_window"))
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{key}: {value!r} must be the path of a profile written by `infersight profile`, "
            "or {past_window: 7d} to compare with the same window a week earlier"
        )
    path = Path(value)
    if not path.is_file():
        raise ConfigError(
            f"{key}: file {value!r} does not exist; write the profile with "
            "`infersight profile DATA --model NAME -o FILE`, or use {past_window: 7d}"
        )
    from infersight.stats.reference import Reference

    try:
        Reference.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{key}: {value!r} cannot be used as a reference: {exc}") from None
    return value


def _windows(value: Any, key: str) -> tuple[int, ...]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}: {value!r} must be a list of durations, e.g. [5m, 1h, 1d]")
    return tuple(sorted({_whole_seconds(v, f"{key}[{i}]") for i, v in enumerate(value)}))


def _modes(value: Any, key: str, windows: tuple[int, ...]) -> dict[int, str]:
    if isinstance(value, str):
        if value not in MODES:
            raise ConfigError(f"{key}: {value!r} is not a mode; write sliding or cumulative")
        return {0: value}  # 0: every window of the model
    body = _mapping(value, key, "{1h: sliding, 1d: cumulative}")
    out: dict[int, str] = {}
    for k, v in body.items():
        size = _whole_seconds(k, f"{key} key")
        if windows and size not in windows:
            raise ConfigError(
                f"{key}.{k}: {k!r} is not one of this model's windows ({', '.join(_fmt(w) for w in windows)}); "
                "add it to windows or remove it here"
            )
        if v not in MODES:
            raise ConfigError(f"{key}.{k}: {v!r} is not a mode; write sliding or cumulative")
        out[size] = str(v)
    return out


def _feature(body: Any, key: str) -> FeatureSettings:
    b = _mapping(body, key, "{method: psi, threshold: 0.25, importance: 2}")
    reject_unknown(b, (*_FEATURE_KEYS, "importance", "ignore"), key)
    kw: dict[str, Any] = {}
    if "method" in b:
        kw["method"] = _method(b["method"], f"{key}.method")
    if "threshold" in b:
        kw["threshold"] = _number(b["threshold"], f"{key}.threshold")
    if "alpha" in b:
        kw["alpha"] = _number(b["alpha"], f"{key}.alpha", hi=0.5)
    if "min_effect" in b:
        kw["min_effect"] = _number(b["min_effect"], f"{key}.min_effect", open_lo=False)
    if "min_rows" in b:
        kw["min_rows"] = _count(b["min_rows"], f"{key}.min_rows")
    for k in ("max_unseen", "min_missing_jump"):
        if k in b:
            kw[k] = _fraction(b[k], f"{key}.{k}")
    if "importance" in b:
        kw["importance"] = _number(b["importance"], f"{key}.importance", open_lo=False)
    if "ignore" in b:
        kw["ignore"] = _bool(b["ignore"], f"{key}.ignore")
    return FeatureSettings(**kw)


def _model(body: Any, where: str) -> tuple[ModelSettings, frozenset[str]]:
    b = _mapping(body, where, "{reference: ./reference.json, windows: [5m, 1h]}")
    reject_unknown(b, _MODEL_KEYS, where)
    kw: dict[str, Any] = {}
    given = set()
    if b.get("reference") is not None:
        kw["reference"] = _reference(b["reference"], f"{where}.reference")
        given.add("reference")
    if "windows" in b:
        kw["windows"] = _windows(b["windows"], f"{where}.windows")
        given.add("windows")
    if "mode" in b:
        kw["modes"] = _modes(b["mode"], f"{where}.mode", kw.get("windows", ()))
        given.add("mode")
    if "features" in b:
        feats = _mapping(b["features"], f"{where}.features", "{income: {method: psi}}")
        kw["features"] = {str(k): _feature(v, f"{where}.features.{k}") for k, v in feats.items()}
        given.add("features")
    if "slices" in b:
        s = b["slices"]
        if isinstance(s, str):
            s = [s]
        if not isinstance(s, list) or not all(isinstance(x, str) and x.strip() for x in s):
            raise ConfigError(f"{where}.slices: {s!r} must be a list of attribute names, e.g. [region, device]")
        kw["slices"] = tuple(dict.fromkeys(str(x) for x in s))
        given.add("slices")
    if "slice_cap" in b:
        kw["slice_cap"] = _count(b["slice_cap"], f"{where}.slice_cap")
        given.add("slice_cap")
    if b.get("runbook") is not None:
        if not isinstance(b["runbook"], str) or not b["runbook"].strip():
            raise ConfigError(f"{where}.runbook: {b['runbook']!r} must be text or a URL")
        kw["runbook"] = b["runbook"].strip()
        given.add("runbook")
    return ModelSettings(**kw), frozenset(given)


def parse_models(body: Mapping[str, Any], where: str) -> ModelsSettings:
    """The ``models:`` section: model name (or ``"*"``) → its entry."""
    models: dict[str, ModelSettings] = {}
    given: dict[str, frozenset[str]] = {}
    for name, entry in body.items():
        models[str(name)], given[str(name)] = _model(entry, f"{where}.{name}")
    return ModelsSettings(models, given)


_EVAL_KEYS = (
    "enabled",
    "interval",
    "lateness",
    "backfill",
    "reopen",
    "no_data_for",
    "alpha",
    "min_effect",
    "min_effect_categorical",
    "min_rows",
    "min_missing_jump",
    "max_unseen",
    "max_violations",
    "methods",
    "evidence",
    "export",
    "export_timeout",
    "multivariate",
    "multivariate_min_rows",
    "lease",
)


def _export(value: Any, key: str) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    u = urlparse(text)
    if u.scheme not in ("http", "https") or not u.hostname or u.port is None and ":" not in u.netloc:
        raise ConfigError(
            f"{key}: {value!r} is not an OTLP/HTTP endpoint; write e.g. http://127.0.0.1:4319 "
            "(the path /v1/metrics is added when none is given)"
        )
    if not u.path or u.path == "/":
        text = text.rstrip("/") + "/v1/metrics"
    return text


def parse_evaluation(body: Mapping[str, Any], where: str) -> EvaluationSettings:
    """The ``evaluation:`` section (see :class:`EvaluationSettings`)."""
    reject_unknown(body, _EVAL_KEYS, where)
    kw: dict[str, Any] = {}
    for k in ("interval", "lateness", "backfill", "reopen", "no_data_for", "export_timeout", "lease"):
        if k == "lateness" and body.get(k) in (0, "0", "0s"):
            kw[k] = 0.0  # evaluate as soon as a window ends (tests, replayed data)
        elif k in body:
            kw[k] = parse_duration(body[k], f"{where}.{k}")
    for k in ("enabled", "multivariate"):
        if k in body:
            kw[k] = _bool(body[k], f"{where}.{k}")
    if "multivariate_min_rows" in body:
        n = body["multivariate_min_rows"]
        if isinstance(n, bool) or not isinstance(n, int) or n < MULTIVARIATE_FLOOR:
            raise ConfigError(
                f"{where}.multivariate_min_rows: {n!r} must be a whole number, at least {MULTIVARIATE_FLOOR} "
                "(the multivariate test needs that many sampled rows to say anything); the default is 100, "
                "or set multivariate: false to turn the test off"
            )
        kw["multivariate_min_rows"] = n
    if "alpha" in body:
        kw["alpha"] = _number(body["alpha"], f"{where}.alpha", hi=0.5)
    for k in ("min_effect", "min_effect_categorical"):
        if k in body:
            kw[k] = _number(body[k], f"{where}.{k}", open_lo=False)
    for k in ("min_missing_jump", "max_unseen", "max_violations"):
        if k in body:
            kw[k] = _fraction(body[k], f"{where}.{k}")
    if "min_rows" in body:
        kw["min_rows"] = _count(body["min_rows"], f"{where}.min_rows")
    if "evidence" in body:
        n = body["evidence"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"{where}.evidence: {n!r} must be a whole number, 0 or more")
        kw["evidence"] = n
    if "methods" in body:
        methods = _mapping(body["methods"], f"{where}.methods", "{numeric: psi, categorical: chi2}")
        kw["methods"] = {str(k): _method(v, f"{where}.methods.{k}", str(k)) for k, v in methods.items()}
    if body.get("export") is not None:
        kw["export"] = _export(body["export"], f"{where}.export")
    if "lease" in kw:
        interval = kw.get("interval", EvaluationSettings.interval)
        if kw["lease"] <= interval:
            raise ConfigError(
                f"{where}.lease: {body['lease']!r} must be longer than evaluation.interval ({interval:g}s), "
                "or a replica loses its models between two passes; use e.g. "
                f"{_fmt(int(max(4 * interval, interval + 1)))} (the default is 4 x interval, at least 60s)"
            )
    return EvaluationSettings(**kw)


def _fmt(seconds: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


def check_windows(models: ModelsSettings, base: int) -> None:
    """Refuse evaluation windows that are not whole numbers of storage windows of ``base``
    seconds (and past-window references that are not), naming the key, value and fix."""
    for name, m in models.models.items():
        for size in m.windows:
            if size % base:
                raise ConfigError(
                    f"models.{name}.windows: {_fmt(size)} is not a multiple of the storage window "
                    f"{_fmt(base)} ({base}s); evaluation windows are merged from whole storage windows: "
                    f"use e.g. {_fmt(max(base, size // base * base) or base)} or {_fmt((size // base + 1) * base)}"
                )
        if isinstance(m.reference, PastWindow) and m.reference.seconds % base:
            raise ConfigError(
                f"models.{name}.reference.past_window: {_fmt(m.reference.seconds)} is not a multiple of the "
                f"storage window {_fmt(base)}; use a whole number of storage windows, e.g. 1d or 7d"
            )


def check_config(cfg: Any) -> None:
    """The whole-config check :func:`~infersight.processor.config.load_config` runs: the
    ``models:`` windows against ``storage.window``."""
    models = cfg.sections.get("models")
    if isinstance(models, ModelsSettings):
        check_windows(models, cfg.window)
