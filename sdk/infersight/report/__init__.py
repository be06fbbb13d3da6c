"""Static HTML drift reports (``infersight report``): one self-contained file with the drift
table, a reference-versus-current plot per feature, data quality, cause hints in words and
what each number means.

Not imported by ``import infersight`` nor by monitored calls: it is for batch jobs and people.
:mod:`.model` is the plain data a report shows, :mod:`.gather` collects it from files or a
processor's API, :mod:`.plots` draws inline SVG, :mod:`.words` holds the sentences and
:mod:`.html` writes the page.

Example:
    >>> import numpy as np
    >>> from infersight.stats.reference import Reference
    >>> rng = np.random.default_rng(0)
    >>> ref = Reference.from_data({"x": rng.normal(size=2000)}, model="m")
    >>> drift = {"windows": [], "summary": {"windows": 0, "windows_with_drift": 0}}
    >>> page = render(ReportInput("m", drift, feature_views(ref, {"x": rng.normal(size=500)}, 500, ["x"])))
    >>> page.startswith("<!DOCTYPE html>") and 'data-feature="x"' in page
    True
"""

from __future__ import annotations

from infersight.report.gather import ProcessorClient, ProcessorError, feature_views, processor_views
from infersight.report.html import render
from infersight.report.model import FeatureView, ReportInput

__all__ = [
    "FeatureView",
    "ReportInput",
    "ProcessorClient",
    "ProcessorError",
    "feature_views",
    "processor_views",
    "render",
]
