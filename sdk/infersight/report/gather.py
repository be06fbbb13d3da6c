"""A report's inputs, from files (a reference profile and a data table) or from a running
processor's JSON API.

The drift table is never computed here: from files it is what ``infersight drift`` computes
(the caller passes its JSON), from a processor what ``/api/models/{model}/drift`` answers.
This module adds what the table does not carry: the distributions to plot and the
data-quality counts, from the data itself, or from ``/api/models/{model}/features/{name}``
(the merged sketch and counters of the range).

Example:
    >>> import numpy as np
    >>> from infersight.stats.reference import Reference
    >>> ref = Reference.from_data({"x": np.arange(100.0)}, model="m")
    >>> views = feature_views(ref, {"x": np.arange(50.0)}, 50, ["x"])
    >>> views["x"].cur_rows, views["x"].cur_numeric.count
    (50, 50)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from infersight.report.model import FeatureView
from infersight.stats.reference import FeatureProfile, NumericSummary, Reference
from infersight.stats.sketch import ExpHistogram

__all__ = ["feature_views", "ProcessorClient", "ProcessorError", "processor_views"]


def _reference_side(view: FeatureView, prof: FeatureProfile) -> None:
    view.ref_rows = prof.rows
    view.ref_missing = dict(prof.missing)
    view.ref_numeric = prof.numeric if prof.numeric is not None and prof.numeric.count else None
    view.ref_categories = dict(prof.categories) if prof.categories is not None else None


def feature_views(
    ref: Reference, columns: Mapping[str, npt.NDArray[Any]], rows: int, wanted: Sequence[str]
) -> dict[str, FeatureView]:
    """Each of ``wanted`` (reference features; timestamps are skipped as drift skips them) with
    the reference's distribution and the whole data's, cut by the one feature model as the
    drift engine cuts it, and the schema's violations counted per rule."""
    from infersight.stats.windows import FeatureWindow

    present = {k: columns[k] for k in wanted if k in columns}
    report = ref.schema.validate(present, rows)
    broken: dict[str, dict[str, int]] = {}
    for v in report.violations:
        if v.feature in ref.features:
            broken.setdefault(v.feature, {})[v.rule] = broken.get(v.feature, {}).get(v.rule, 0) + v.count
    out: dict[str, FeatureView] = {}
    for name in wanted:
        prof = ref.features[name]
        if prof.kind == "timestamp":
            continue
        view = FeatureView(name, prof.kind, violations=broken.get(name, {}))
        _reference_side(view, prof)
        if name in present:
            fw = FeatureWindow.from_column(present[name], prof.kind, keep_values=True)
            view.cur_rows = fw.rows
            view.cur_missing = dict(fw.missing)
            if fw.values is not None and fw.values.size:
                view.cur_numeric = NumericSummary.from_values(fw.values)
            view.cur_categories = fw.categories
        out[name] = view
    return out


class ProcessorError(Exception):
    """The processor could not be asked, or refused; the message says what to fix."""


class ProcessorClient:
    """GETs on a processor's web port (stdlib only: a report needs no HTTP package).

    >>> ProcessorClient("http://127.0.0.1:8318/").base
    'http://127.0.0.1:8318'
    """

    def __init__(self, base: str, token: str | None = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"--processor {base!r} is not an http(s) URL; pass the processor's web address, "
                "e.g. --processor http://127.0.0.1:8318"
            )
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, **params: Any) -> Any:
        """The JSON answer of ``GET path?params`` (``None`` values left out)."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (http(s) checked above)
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise ProcessorError(self._refusal(url, exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ProcessorError(
                f"cannot reach the processor at {self.base} ({reason}); check --processor and that "
                "`infersight processor` is running there"
            ) from None
        except ValueError as exc:
            raise ProcessorError(
                f"{url} did not answer JSON ({exc}); is {self.base} an infersight processor?"
            ) from None

    def _refusal(self, url: str, exc: urllib.error.HTTPError) -> str:
        try:
            said = json.loads(exc.read().decode("utf-8")).get("error", "")
        except (ValueError, AttributeError, OSError):
            said = ""
        if exc.code == 401:
            hint = "pass --token TOKEN" if not self.token else "the --token given was refused; check it"
            return f"the processor at {self.base} wants a bearer token: {hint}"
        return f"{url} answered {exc.code}: {said or exc.reason}"


def _kind_from(method: str | None, series: Mapping[str, Any]) -> str:
    if method == "chi2+cohen_w" or (series.get("categories") and not series.get("numeric_count")):
        return "categorical"
    return "numeric"


def processor_views(
    client: ProcessorClient,
    model: str,
    drift: Mapping[str, Any],
    reference: Reference | None,
    *,
    version: str | None = None,
) -> dict[str, FeatureView]:
    """Each feature of the drift answer with the range's merged distribution from
    ``/api/models/{model}/features/{name}`` and, when given, the reference profile's."""
    names: dict[str, str | None] = {}
    for w in drift.get("windows", []):
        for name, f in w.get("features", {}).items():
            names.setdefault(name, f.get("method"))
    out: dict[str, FeatureView] = {}
    quoted = urllib.parse.quote(model, safe="")
    for name, method in names.items():
        series = client.get(
            f"/api/models/{quoted}/features/{urllib.parse.quote(name, safe='')}",
            start=drift.get("start"),
            end=drift.get("end"),
            version=version,
        )
        prof = reference.features.get(name) if reference is not None else None
        view = FeatureView(name, prof.kind if prof is not None else _kind_from(method, series))
        if prof is not None:
            _reference_side(view, prof)
        if series.get("windows"):
            missing = {str(k): int(v) for k, v in (series.get("missing") or {}).items()}
            view.cur_missing = missing
            view.cur_rows = int(series.get("count", 0)) + sum(missing.values())
            sketch = series.get("sketch")
            if sketch and int(sketch.get("count", 0)):
                view.cur_numeric = NumericSummary.from_sketch(ExpHistogram.from_dict(sketch))
            cats = series.get("categories")
            if cats or view.kind in ("categorical", "boolean"):
                view.cur_categories = {str(k): int(v) for k, v in (cats or {}).items()}
            view.violations = {str(k): int(v) for k, v in (series.get("violations") or {}).items()}
        out[name] = view
    return out
