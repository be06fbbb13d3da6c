"""One model's stored data over one evaluation window, read once and shared by the evaluators.

:func:`load_window` reads every series of a model over ``[start, end)`` in one storage query
(:meth:`~infersight.processor.storage.base.Storage.query_model`); :class:`ModelWindow` gives
it back by role and version (``""``: all versions merged), as the statistics engine's
:class:`~infersight.stats.windows.FeatureWindow` where drift wants one, and with the
fingerprint that tells a re-read window from a changed one (late points).

Example:
    >>> from infersight.stats.windows import WindowStats
    >>> w = ModelWindow("m", 60, 0, 60, {("feature", "x", "1"): WindowStats(counters={"missing": {"nan": 2}})})
    >>> w.versions, sorted(w.features("")), w.rows("")
    (('1',), ['x'], 2)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infersight.processor.storage.base import FEATURE, MODEL, OUTPUT, Storage, sliced_role, split_role
from infersight.stats.windows import FeatureWindow, WindowStats

__all__ = ["ModelWindow", "load_window", "total", "output_window", "feature_window"]


def total(ws: WindowStats) -> float:
    """Everything a window counted: sketch counts, histogram counts, counter values."""
    n = float(sum(s.count for s in ws.sketches.values()))
    n += sum(h.count for h in ws.histograms.values())
    n += sum(sum(v.values()) for v in ws.counters.values())
    return n


def feature_window(ws: WindowStats, kind: str | None) -> FeatureWindow:
    return FeatureWindow.from_stats(ws, kind)


def output_window(ws: WindowStats, kind: str | None = None) -> FeatureWindow:
    """A model output's window read as a feature: classes as categories, nulls as missing."""
    as_feature = WindowStats(sketches={k: v for k, v in ws.sketches.items() if k == "value"})
    if "class" in ws.counters:
        as_feature.counters["category"] = dict(ws.counters["class"])
    nulls = ws.counters.get("null", {})
    if nulls:
        as_feature.counters["missing"] = {"null": float(sum(nulls.values()))}
    if kind is None:
        kind = "categorical" if "class" in ws.counters and "value" not in ws.sketches else "numeric"
    return FeatureWindow.from_stats(as_feature, kind)


@dataclass
class ModelWindow:
    """``series`` maps ``(role, name, version)`` to the window's merged statistics; a slice's
    features and outputs are under their sliced role (``feature@region=eu``, see
    :func:`~infersight.processor.storage.base.sliced_role`) and read with ``slice_=``."""

    model: str
    size: int
    start: int
    end: int
    series: Mapping[tuple[str, str, str], WindowStats]
    _merged: dict[tuple[str, str], dict[str, WindowStats]] = field(default_factory=dict, repr=False)
    _present: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _windows: dict[tuple[str, str, str | None, str], FeatureWindow] = field(default_factory=dict, repr=False)
    _totals: dict[int, float] = field(default_factory=dict, repr=False)

    def total(self, ws: WindowStats) -> float:
        """:func:`total` of one of this window's statistics, worked out once (emptiness, the
        fingerprint and which features are present all ask)."""
        got = self._totals.get(id(ws))
        if got is None:
            got = self._totals[id(ws)] = total(ws)
        return got

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(sorted({v for _, _, v in self.series}))

    @property
    def slices(self) -> tuple[str, ...]:
        """The slice keys with data in this window (``@monitor(slices=...)``), sorted."""
        return tuple(sorted({k for k in (split_role(r)[1] for r, _, _ in self.series) if k}))

    @property
    def empty(self) -> bool:
        return not any(self.total(ws) for ws in self.series.values())

    def _role(self, role: str, version: str) -> dict[str, WindowStats]:
        key = (role, version)
        got = self._merged.get(key)
        if got is None:
            parts: dict[str, list[WindowStats]] = {}
            for (r, name, v), ws in self.series.items():
                if r == role and (not version or v == version):
                    parts.setdefault(name, []).append(ws)
            got = {k: p[0] if len(p) == 1 else WindowStats.merge_all(p) for k, p in parts.items()}
            self._merged[key] = got
        return got

    def features(self, version: str = "", slice_: str = "") -> dict[str, WindowStats]:
        """Feature name → statistics (``version`` ``""``: every version merged; ``slice_``
        ``""``: all traffic)."""
        return self._role(sliced_role(FEATURE, slice_), version)

    def feature_window(self, name: str, version: str = "", kind: str | None = None, slice_: str = "") -> FeatureWindow:
        """Feature ``name``'s statistics as the engine reads them (read once per window and
        kind: drift and data quality share it; not to be modified)."""
        key = (version, name, kind, slice_)
        got = self._windows.get(key)
        if got is None:
            got = self._windows[key] = FeatureWindow.from_stats(self.features(version, slice_)[name], kind)
        return got

    def outputs(self, version: str = "", slice_: str = "") -> dict[str, WindowStats]:
        return self._role(sliced_role(OUTPUT, slice_), version)

    def slice_rows(self, slice_: str) -> int:
        """The most rows any feature of the slice saw in this window."""
        return max((FeatureWindow.from_stats(ws).rows for ws in self.features("", slice_).values()), default=0)

    def calls(self, version: str = "") -> WindowStats | None:
        return self._role(MODEL, version).get("")

    def present(self, version: str = "") -> set[str]:
        """Features with at least one value (missing values count; only ``absent`` does not)."""
        got = self._present.get(version)
        if got is None:
            got = self._present[version] = self._find_present(version)
        return set(got)

    def _find_present(self, version: str) -> set[str]:
        out = set()
        for name, ws in self.features(version).items():
            missing = ws.counters.get("missing", {})
            if self.total(ws) - missing.get("absent", 0) - sum(ws.counters.get("violations", {}).values()) > 0:
                out.add(name)
        return out

    def rows(self, version: str = "") -> int:
        """Calls' rows when the model's own series has them, else the most any feature saw."""
        calls = self.calls(version)
        if calls is not None and "batch_size" in calls.sketches:
            return int(calls.sketches["batch_size"].sum)
        feats = self.features(version)
        return max((FeatureWindow.from_stats(ws).rows for ws in feats.values()), default=0)

    def fingerprint(self) -> str:
        """What the window adds up to, series by series: equal after compaction, different
        once a late point arrived."""
        h = hashlib.sha1()
        for key in sorted(self.series):
            h.update(f"{key}:{self.total(self.series[key]):.6g};".encode())
        return h.hexdigest()[:16]


def load_window(storage: Storage, model: str, size: int, start: int, data_start: int | None = None) -> ModelWindow:
    """The model's data for the evaluation window ``[start, start + size)``; ``data_start``
    widens the read back (cumulative mode) while the window keeps its own start."""
    lo = start if data_start is None else data_start
    return ModelWindow(model, size, start, start + size, storage.query_model(model, lo, start + size))


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made plain, non-finite floats as ``None``."""
    # the plain types first, by exact type (most of what findings hold; a pass makes ~10^5)
    t = type(value)
    if t is float:
        return value if math.isfinite(value) else None
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            tv = type(v)
            if tv is float:
                v = v if math.isfinite(v) else None
            elif not (tv is str or tv is int or tv is bool or v is None):
                v = jsonable(v)
            out[k if type(k) is str else str(k)] = v
        return out
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
