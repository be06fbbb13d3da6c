"""What a report shows, as plain data: the drift JSON (the shape ``infersight drift --format
json`` prints and ``/api/models/{model}/drift`` serves) and, per feature, the reference and
current distributions and data-quality counts. Gathered from files or from a processor
(:mod:`.gather`), rendered by :mod:`.html`; neither knows about the other.

Example:
    >>> v = FeatureView("plan", "categorical", ref_rows=10, ref_categories={"a": 10})
    >>> v.in_data, v.missing_rate("reference")
    (False, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infersight.stats.reference import NumericSummary

__all__ = ["FeatureView", "ReportInput"]


@dataclass
class FeatureView:
    """One feature on both sides. ``*_numeric`` are the CDF knots of the values (of lengths for
    text and arrays), ``*_categories`` the category counts; ``cur_rows`` is ``None`` when the
    data does not hold the feature. ``violations`` counts rows per schema rule."""

    name: str
    kind: str
    ref_rows: int = 0
    ref_missing: dict[str, int] = field(default_factory=dict)
    ref_numeric: NumericSummary | None = None
    ref_categories: dict[str, int] | None = None
    cur_rows: int | None = None
    cur_missing: dict[str, int] = field(default_factory=dict)
    cur_numeric: NumericSummary | None = None
    cur_categories: dict[str, int] | None = None
    violations: dict[str, int] = field(default_factory=dict)

    @property
    def in_data(self) -> bool:
        return self.cur_rows is not None

    def missing_rate(self, side: str, kind: str | None = None) -> float:
        """Share of rows missing (of ``kind``, or null/NaN/absent together) on ``side``
        (``"reference"`` or ``"current"``)."""
        counts, rows = (self.ref_missing, self.ref_rows) if side == "reference" else (self.cur_missing, self.cur_rows)
        if not rows:
            return 0.0
        if kind is not None:
            return counts.get(kind, 0) / rows
        return sum(v for k, v in counts.items() if k != "inf") / rows


@dataclass
class ReportInput:
    """Everything one report shows.

    ``drift`` is the drift JSON (``windows`` and ``summary``; the processor adds ``start``,
    ``end`` and ``reference``); ``sources`` are ``(label, value)`` lines naming where it came
    from; ``unprofiled`` are data columns the reference does not know (not judged); ``range``
    is ``(start, end)`` in Unix seconds for a processor range, else ``None``.
    """

    title: str
    drift: dict[str, Any]
    features: dict[str, FeatureView]
    sources: list[tuple[str, str]] = field(default_factory=list)
    unprofiled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    range: tuple[int, int] | None = None
