"""Where each model's reference comes from, and the drift policy that scores against it.

A model's reference is, first match wins: a profile pushed at run time (``POST
/api/models/{model}/reference``, stored as a record of kind ``"reference"`` so replicas and
restarts see it), the profile file named in ``models.<name>.reference``, or a past window
(``{past_window: 7d}``, or one day earlier when nothing is configured): the same window that
long ago, read from the store and profiled from its sketches.

Fitting a drift method to a reference feature is the costly half of scoring, so fitted
methods are kept per reference and feature (:class:`Scorer`), not rebuilt per window.

Example:
    >>> from infersight.processor.storage import open_storage
    >>> from infersight.processor.evaluate.settings import ModelsSettings, EvaluationSettings
    >>> refs = References(open_storage("sqlite:///:memory:", (60,)), ModelsSettings(), EvaluationSettings())
    >>> refs.resolve("churn", 60, 86400 * 2).source
    'past_window:86400'
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infersight.processor.evaluate.settings import (
    DEFAULT_PAST,
    EvaluationSettings,
    ModelSettings,
    ModelsSettings,
    PastWindow,
)
from infersight.processor.evaluate.window import output_window
from infersight.processor.storage.base import FEATURE, OUTPUT, Record, Storage, sliced_role
from infersight.stats.drift import DriftPolicy, DriftResult
from infersight.stats.reference import FeatureProfile, Reference
from infersight.stats.windows import FeatureWindow, WindowSummary

__all__ = ["Env", "References", "ResolvedReference", "Scorer", "parse_profile", "missing_jump", "past_reference"]

log = logging.getLogger("infersight.processor.evaluate")

REFERENCE_KIND = "reference"


def parse_profile(body: Any, model: str) -> Reference:
    """A pushed profile (the JSON ``infersight profile`` writes), checked; ``ValueError``
    saying what is wrong and how to make a good one otherwise."""
    if not isinstance(body, Mapping):
        raise ValueError(
            f"the body must be a JSON object, a profile written by `infersight profile DATA --model {model} -o FILE`; "
            f"got {type(body).__name__}"
        )
    fmt = body.get("format")
    if fmt is not None and fmt != "infersight.reference":
        raise ValueError(f"format {fmt!r} is not an infersight reference profile (expected 'infersight.reference')")
    if not isinstance(body.get("features"), Mapping) or not body["features"]:
        raise ValueError(
            "the profile has no features; send the JSON written by "
            f"`infersight profile DATA --model {model} -o FILE` (it maps each feature to its summary)"
        )
    ref = Reference.from_dict(body, source="the pushed profile")
    if ref.model not in (None, "", model):
        raise ValueError(
            f"the profile is for model {ref.model!r}, not {model!r}; push it to /api/models/{ref.model}/reference "
            f"or re-create it with --model {model}"
        )
    return ref


@dataclass
class ResolvedReference:
    """A reference for one window: the profile (``None`` when there is none yet), where it
    came from (``pushed:<time>``, ``file:<path>``, ``past_window:<seconds>``), and whether its
    fitted methods may be cached (a past window is a new reference for every window)."""

    reference: Reference | None
    source: str
    cacheable: bool


class References:
    """Resolves each model's reference; see the module docstring. Thread-safe."""

    def __init__(self, storage: Storage, models: ModelsSettings, evaluation: EvaluationSettings) -> None:
        self.storage = storage
        self.models = models
        self.evaluation = evaluation
        self._lock = threading.Lock()
        self._pushed: dict[str, tuple[float, Reference]] = {}
        self._stamps: dict[str, float] = {}
        self._files: dict[str, tuple[float, Reference]] = {}

    # -- pushed profiles ----------------------------------------------------------------------

    def push(self, model: str, body: Any, now: float | None = None) -> Reference:
        """Validate and store a profile for ``model``; it replaces the file (and any earlier
        push) from the next evaluation on."""
        ref = parse_profile(body, model)
        t = time.time() if now is None else now
        doc = ref.to_dict()
        self.storage.put_records(
            [
                Record(REFERENCE_KIND, model, model, t, {"pushed_at": t, "profile": doc}),
                Record("reference_stamp", model, model, t, {"pushed_at": t}),
            ]
        )
        with self._lock:
            self._pushed[model] = (t, ref)
            self._stamps[model] = t
        return ref

    def refresh(self) -> None:
        """Read which models have pushed profiles (one small read; bodies only when new)."""
        stamps = {r.key: float(r.body.get("pushed_at", r.time)) for r in self.storage.get_records("reference_stamp")}
        with self._lock:
            self._stamps = stamps
            for model in [m for m in self._pushed if m not in stamps]:
                del self._pushed[model]

    def pushed(self, model: str) -> tuple[float, Reference] | None:
        with self._lock:
            stamp = self._stamps.get(model)
            have = self._pushed.get(model)
        if stamp is None and have is None:
            return None
        if have is not None and (stamp is None or have[0] >= stamp):
            return have
        got = self.storage.get_records(REFERENCE_KIND, key=model)
        if not got:
            return None
        body = got[0].body
        try:
            ref = Reference.from_dict(body["profile"], source=f"the profile pushed for {model!r}")
        except (KeyError, ValueError) as exc:
            log.warning("stored reference for %r is unusable (%s); push it again", model, exc)
            return None
        entry = (float(body.get("pushed_at", got[0].time)), ref)
        with self._lock:
            self._pushed[model] = entry
        return entry

    # -- resolution ---------------------------------------------------------------------------

    def _file(self, path: str) -> tuple[float, Reference]:
        mtime = Path(path).stat().st_mtime
        have = self._files.get(path)
        if have is None or have[0] != mtime:
            have = (mtime, Reference.load(path))
            self._files[path] = have
        return have

    def resolve(
        self, model: str, size: int, start: int, data_start: int | None = None, settings: ModelSettings | None = None
    ) -> ResolvedReference:
        """The reference for ``model``'s window ``[start, start + size)`` (``data_start``: the
        cumulative view's start, so a past-window reference covers the same span)."""
        ms = settings or self.models.for_model(model)
        pushed = self.pushed(model)
        if pushed is not None:
            return ResolvedReference(pushed[1], f"pushed:{pushed[0]:.3f}", True)
        if isinstance(ms.reference, str):
            try:
                mtime, ref = self._file(ms.reference)
                return ResolvedReference(ref, f"file:{ms.reference}@{mtime:.0f}", True)
            except (OSError, ValueError) as exc:
                log.warning(
                    "reference file %r for %r cannot be read (%s); using a past window", ms.reference, model, exc
                )
        return self._past(model, size, start, data_start, ms)

    def resolve_slice(
        self,
        model: str,
        slice_: str,
        size: int,
        start: int,
        data_start: int | None = None,
        settings: ModelSettings | None = None,
    ) -> ResolvedReference:
        """The reference for slice ``slice_`` of ``model``'s window: the slice's own stored
        windows the model's past window earlier (one day when its reference is a profile,
        which describes all traffic, not one slice's)."""
        return self._past(model, size, start, data_start, settings or self.models.for_model(model), slice_)

    def _past(
        self, model: str, size: int, start: int, data_start: int | None, ms: ModelSettings, slice_: str = ""
    ) -> ResolvedReference:
        past = ms.reference if isinstance(ms.reference, PastWindow) else DEFAULT_PAST
        lo = (start if data_start is None else data_start) - past.seconds
        past_ref = past_reference(self.storage, model, lo, start + size - past.seconds, slice_=slice_)
        return ResolvedReference(past_ref, f"past_window:{past.seconds}", False)


def past_reference(
    storage: Storage, model: str, start: int, end: int, version: str | None = None, slice_: str = ""
) -> Reference | None:
    """The model's stored windows over ``[start, end)`` as a reference (``None`` if empty);
    with ``slice_``, the windows of that slice only."""
    if end <= 0:
        return None
    feature, output = sliced_role(FEATURE, slice_), sliced_role(OUTPUT, slice_)
    series = storage.query_model(model, max(start, 0), end, roles=(feature, output))
    feats: dict[str, list[Any]] = {}
    outs: dict[str, list[Any]] = {}
    for (role, name, v), ws in series.items():
        if version and v != version:
            continue
        (feats if role == feature else outs).setdefault(name, []).append(ws)
    if not feats:
        return None
    from infersight.stats.windows import WindowStats

    merged = {k: p[0] if len(p) == 1 else WindowStats.merge_all(p) for k, p in feats.items()}
    summary = WindowSummary.from_stats(merged)
    if not summary.rows:
        return None
    ref: Reference = summary.as_reference(model)
    if len(outs) == 1:
        ((name, parts),) = outs.items()
        ows = parts[0] if len(parts) == 1 else WindowStats.merge_all(parts)
        ref.prediction = output_window(ows).as_profile(name)
    return ref


def missing_jump(
    ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int, alpha: float, min_jump: float
) -> tuple[bool, float | None]:
    """Whether the missing rate rose significantly (two-proportion z-test at ``alpha``) by at
    least ``min_jump``; and the test's p-value (``None`` when it was not run)."""
    if cur_rows == 0 or ref_rows == 0:
        return False, None
    p0, p1 = ref_missing / ref_rows, cur_missing / cur_rows
    pooled = (ref_missing + cur_missing) / (ref_rows + cur_rows)
    se = math.sqrt(max(pooled * (1 - pooled) * (1 / ref_rows + 1 / cur_rows), 1e-300))
    p = 0.5 * math.erfc(((p1 - p0) / se) / math.sqrt(2))
    return bool(p1 - p0 >= min_jump and p < alpha), p


class Scorer:
    """The drift policy for one model's settings, with each fitted method kept per reference
    (by its source) and feature, so a window costs only the scoring."""

    def __init__(self, evaluation: EvaluationSettings, settings: ModelSettings) -> None:
        overrides = {name: f.overrides() for name, f in settings.features.items() if f.overrides()}
        self.policy = DriftPolicy(**evaluation.policy_kwargs(), overrides=overrides)
        self._fitted: dict[tuple[str, str, str], Any] = {}

    def method(self, profile: FeatureProfile, source: str | None, role: str = FEATURE) -> Any:
        key = (source or "", role, profile.name)
        m = self._fitted.get(key) if source else None
        if m is None:
            m = self.policy.method_for(profile).fit(profile)
            if source:
                if len(self._fitted) > 100_000:  # references replaced many times: start over
                    self._fitted.clear()
                self._fitted[key] = m
        return m

    def score(
        self, profile: FeatureProfile, window: FeatureWindow, source: str | None, *, with_missing: bool = False
    ) -> tuple[DriftResult, bool, float | None]:
        """The method's verdict on the window's values, whether the missing rate jumped (and
        that test's p-value). ``with_missing`` folds the jump into the result as
        :meth:`DriftPolicy.score_feature` does (the CLI's shape)."""
        res: DriftResult = self.method(profile, source).score_window(window)
        o = self.policy.overrides.get(profile.name, {})
        ref_missing = sum(v for k, v in profile.missing.items() if k != "inf")
        cur_missing = sum(v for k, v in window.missing.items() if k != "inf")
        jumped, p = missing_jump(
            ref_missing,
            profile.rows,
            cur_missing,
            window.rows,
            o.get("alpha", self.policy.alpha),
            o.get("min_missing_jump", self.policy.min_missing_jump),
        )
        if res.cause in ("constant_column", "unseen_categories"):
            jumped = False
        if with_missing and jumped:
            from dataclasses import replace

            res = replace(
                res,
                drift=True,
                cause="missing_rate_jump",
                details={**res.details, "missing_rate": cur_missing / max(window.rows, 1)},
            )
        return res, jumped, p


class Env:
    """What the built-in evaluators share: the store, the settings, the references and one
    :class:`Scorer` per model (rebuilt when that model's settings change)."""

    def __init__(self, storage: Storage, models: ModelsSettings, evaluation: EvaluationSettings) -> None:
        self.storage = storage
        self.models = models
        self.evaluation = evaluation
        self.references = References(storage, models, evaluation)
        self._scorers: dict[str, tuple[ModelSettings, Scorer]] = {}

    def settings(self, model: str) -> ModelSettings:
        return self.models.for_model(model)

    def scorer(self, model: str, settings: ModelSettings | None = None) -> Scorer:
        ms = settings or self.settings(model)
        have = self._scorers.get(model)
        if have is None or have[0] != ms:
            have = (ms, Scorer(self.evaluation, ms))
            self._scorers[model] = have
        return have[1]
