"""Drift methods by name: what the policy, the CLI and the processor choose from.

A method is registered once with the feature kinds it applies to and how it decides
(``rule``: ``"p_value"`` when a test decides, ``"statistic"`` when the statistic against its
threshold does, ``"both"`` when it needs significance *and* an effect, which is what
:func:`~infersight.stats.drift.policy.explain` reports). Registering is all a new method
needs to be usable by name in ``DriftPolicy(methods=..., overrides={feature: {"method": ...}})``
and in ``infersight drift --method``.

Example:
    >>> from infersight.stats.drift.ks import KS
    >>> spec = get("ks")
    >>> spec.kinds >= {"numeric"}, spec.rule
    (True, 'p_value')
    >>> isinstance(spec.create(MethodSettings(alpha=0.01)), KS)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from infersight.stats.drift.base import DriftMethod, MethodSettings

__all__ = [
    "MethodSpec",
    "register",
    "unregister",
    "get",
    "names",
    "available",
    "NUMERIC_KINDS",
    "CATEGORICAL_KINDS",
    "RULES",
]

# Feature kinds (infersight.stats.columns.KINDS) each family scores: text and arrays are scored
# by their lengths, as numbers; timestamps are not judged for drift.
NUMERIC_KINDS = frozenset({"numeric", "text", "array"})
CATEGORICAL_KINDS = frozenset({"categorical", "boolean"})
RULES = ("p_value", "statistic", "both")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its ``name`` (also ``DriftResult.method``), how to build it from a
    policy's :class:`~infersight.stats.drift.base.MethodSettings`, the feature ``kinds`` it
    applies to, its decision ``rule`` and a one-line ``description`` (shown by the CLI)."""

    name: str
    factory: Callable[[MethodSettings], Any]
    kinds: frozenset[str]
    rule: str = "statistic"
    description: str = ""

    def create(self, settings: MethodSettings | None = None) -> Any:
        """A new, unfitted method configured by ``settings`` (defaults when ``None``)."""
        return self.factory(settings or MethodSettings())

    def applies_to(self, kind: str) -> bool:
        return kind in self.kinds


_REGISTRY: dict[str, MethodSpec] = {}


def register(
    name: str,
    method: type[DriftMethod] | Callable[[MethodSettings], Any],
    *,
    kinds: Iterable[str],
    rule: str = "statistic",
    description: str = "",
    replace: bool = False,
) -> MethodSpec:
    """Make ``method`` available by ``name``.

    ``method`` is a :class:`~infersight.stats.drift.base.DriftMethod` subclass (built with its
    ``from_settings``) or any callable taking ``MethodSettings`` and returning an object with
    ``fit``, ``score`` and ``score_window``. A name already taken is refused unless ``replace``.
    """
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not one of {RULES}; say what decides the method's verdict")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a drift method named {name!r} is already registered; pick another name or replace=True")
    factory = method.from_settings if isinstance(method, type) and issubclass(method, DriftMethod) else method
    spec = MethodSpec(name, factory, frozenset(kinds), rule, description)
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget ``name`` (tests that register their own methods clean up with this)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> MethodSpec:
    """The method registered as ``name``; an unknown name is a ``KeyError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no drift method named {name!r}; the registered ones are {', '.join(names())}") from None


def names(kind: str | None = None) -> list[str]:
    """Registered method names (those that apply to ``kind`` when given), sorted."""
    return sorted(k for k, s in _REGISTRY.items() if kind is None or kind in s.kinds)


def available() -> list[MethodSpec]:
    """Every registered method, by name."""
    return [_REGISTRY[k] for k in names()]
