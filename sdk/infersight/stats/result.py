"""The result every drift method returns (re-exported by ``infersight.stats.drift``).

Example:
    >>> r = DriftResult("ks", 0.31, 0.05, 1e-12, True, "distribution_shift")
    >>> r.to_dict()["drift"], r.severity
    (True, 6.2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DriftResult"]


@dataclass
class DriftResult:
    """What a drift method found for one feature and window.

    ``statistic`` is compared with ``threshold`` (both on the method's scale; for the default
    policy the statistic is the effect size); ``p_value`` is set where a test gives one;
    ``cause`` is a hint (``unit_change:x1000``, ``missing_rate_jump``, ``unseen_categories``,
    ``constant_column``, ``distribution_shift`` ...) or ``None`` without drift.
    """

    method: str
    statistic: float
    threshold: float
    p_value: float | None
    drift: bool
    cause: str | None = None
    n_reference: int = 0
    n_current: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> float:
        """``statistic / threshold``: above 1 means past the threshold; used for ranking."""
        if not math.isfinite(self.statistic) or not self.threshold:
            return 0.0
        return round(self.statistic / self.threshold, 12)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``infersight drift --format json`` (non-finite numbers → null)."""
        return {
            "method": self.method,
            "statistic": _finite(self.statistic),
            "threshold": _finite(self.threshold),
            "p_value": None if self.p_value is None else _finite(self.p_value),
            "drift": bool(self.drift),
            "cause": self.cause,
        }


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
