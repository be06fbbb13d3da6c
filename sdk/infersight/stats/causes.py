"""Cause hints grouped into what a reader must check first: the one classification the
processor's findings and alerts, ``infersight drift`` and ``infersight report`` share.

A cause hint (``DriftResult.cause``, ``Finding.cause``) is a short code the engine, the API and
the alert policies match on (``unit_change:x1000``, ``missing_rate_jump``, ``distribution_shift``
...). Its class says where the fix is: ``pipeline`` (upstream of the model: a unit change, a
missing-value jump, new categories, a column gone), ``model_version`` (which model serves),
``stale_model`` (time since training), ``service`` (an SLO's error budget burning) or ``world``
(the population changed).
"""

from __future__ import annotations

__all__ = ["cause_class", "CLASSES"]

CLASSES = ("pipeline", "model_version", "stale_model", "service", "world")

# The engine's cause hints, grouped into what a reader must check first.
_PIPELINE = (
    "missing_rate_jump",
    "unit_change",
    "unseen_categories",
    "schema",
    "feature_missing",
    "nan",
    "type",
    "no_data",
    "constant_column",
)
_MODEL_VERSION = ("version", "wrong_model")
_STALE = ("age", "stale")
_SERVICE = ("slo_burn",)


def cause_class(cause: str | None) -> str | None:
    """The class of a cause hint: ``pipeline`` (NaN jump, unit change, schema change, a new
    category, a feature that stopped arriving), ``model_version``, ``stale_model``,
    ``service`` (an SLO burning its error budget) or ``world`` (a distribution shift); ``None``
    without a cause.

    >>> cause_class("unit_change:x1000"), cause_class("distribution_shift"), cause_class(None)
    ('pipeline', 'world', None)
    """
    if not cause:
        return None
    head = cause.split(":", 1)[0]
    if head.startswith(_PIPELINE):
        return "pipeline"
    if head.startswith(_MODEL_VERSION):
        return "model_version"
    if head.startswith(_STALE):
        return "stale_model"
    if head.startswith(_SERVICE):
        return "service"
    return "world"
