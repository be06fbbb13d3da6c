"""What an SLO is, as data: :class:`Objective` and :class:`BurnAlert`, shared by the ``slo:``
section's parser (:mod:`~infersight.processor.slo.settings`) and the OpenSLO reader
(:mod:`~infersight.processor.slo.openslo`), which both build them.

Example:
    >>> o = Objective(name="up", model="churn", kind="availability", objective=0.999)
    >>> round(o.budget, 6), o.matches("churn"), o.matches("ranker")
    (0.001, True, False)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

__all__ = ["Objective", "BurnAlert", "SLI_KINDS", "SEVERITIES"]

# latency: calls answered within ``threshold`` seconds (read from the stored duration
# histograms); availability: calls without an error; data_quality: calls whose inputs passed
# the schema; model_quality: labelled predictions that were right (classification accuracy).
SLI_KINDS = ("latency", "availability", "data_quality", "model_quality")
SEVERITIES = ("page", "ticket")


@dataclass(frozen=True)
class BurnAlert:
    """Fire while both the ``long`` and the ``short`` window (seconds) burn the budget at least
    ``factor`` times as fast as the period allows; the factor is ``budget × period ÷ long``
    unless given outright."""

    name: str
    severity: str
    long: float
    short: float
    budget: float | None = None  # share of the period's budget this alert guards
    factor: float | None = None  # explicit burn-rate factor (wins over ``budget``)


@dataclass(frozen=True)
class Objective:
    """One SLO of one model (``model`` may be a glob: the SLO then holds for each model it
    matches). ``objective`` is the share of good events (0.999 for 99.9%); ``threshold`` the
    latency bound in seconds (latency SLOs only). ``period``, ``min_events`` and ``no_data``
    are ``None`` when the section-wide values apply."""

    name: str
    model: str
    kind: str
    objective: float
    threshold: float | None = None
    per_version: bool = True
    period: float | None = None
    min_events: int | None = None
    no_data: float | None = None
    description: str = ""
    # this objective's own burn-rate alerts (an OpenSLO AlertPolicy); empty: the section's
    alerts: tuple[BurnAlert, ...] = ()

    @property
    def budget(self) -> float:
        """The share of events allowed to be bad: ``1 - objective``."""
        return 1.0 - self.objective

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model)
