"""Redaction of sensitive fields by name, applied the same way to logs, spans and metrics.

A pattern is a case-insensitive shell-style pattern on the field name (``*_token``,
``card_*``); a pattern without wildcards matches any name that contains it, so ``password``
also catches ``user_password``. Nested dicts and lists are walked.

Example:
    >>> r = Redactor(["password", "card_*"])
    >>> r.redact({"user": "ann", "password": "x", "card_no": 1, "items": [{"Password": "y"}]})
    {'user': 'ann', 'password': '[REDACTED]', 'card_no': '[REDACTED]', 'items': [{'Password': '[REDACTED]'}]}
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Redactor", "REDACTED"]

REDACTED = "[REDACTED]"
# Value types that hold no field names to redact (exact types: a subclass of str could be anything).
_PLAIN_TYPES = frozenset({float, int, str, bool, type(None)})


class Redactor:
    """Compiled set of field-name patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        parts = []
        for p in patterns:
            p = p.strip().lower()
            if not p:
                continue
            if any(c in p for c in "*?["):
                parts.append(fnmatch.translate(p))
            else:
                parts.append(".*" + re.escape(p) + ".*")
        self._re = re.compile("|".join(f"(?:{x})" for x in parts), re.IGNORECASE | re.DOTALL) if parts else None
        self._cache: dict[str, bool] = {}
        self._clean: set[str] = set()  # names known not to match: one C-level subset test per call
        self.active: bool = self._re is not None  # whether any pattern was given

    def matches(self, name: Any) -> bool:
        """Whether a field called ``name`` must be redacted (answers cached per name). A name
        that is not a ``str`` (a dict key ``1``, ``None``, a tuple) is read as ``str(name)``,
        the name its feature's statistics carry."""
        if type(name) is not str:
            name = str(name)  # by its text: 1 and True are equal keys, not equal names
        hit = self._cache.get(name)
        if hit is None:
            hit = self._re is not None and self._re.fullmatch(name) is not None
            if len(self._cache) < 10_000:
                self._cache[name] = hit
        return hit

    def any_match(self, names: Iterable[Any]) -> bool:
        """Whether any of ``names`` must be redacted."""
        if self._re is None or self._clean.issuperset(names):
            return False
        hit = False
        for n in names:
            if self.matches(n):
                hit = True
            elif len(self._clean) < 10_000 and type(n) is str:
                self._clean.add(n)
        return hit

    def redact(self, obj: Any, _depth: int = 0) -> Any:
        """A copy of ``obj`` with matching fields replaced by ``[REDACTED]`` (nested too)."""
        if self._re is None or _depth > 32:
            return obj
        if isinstance(obj, dict):
            clean = self._clean
            if clean.issuperset(obj):
                # every name known not to match (rows of a batch share theirs): only the values
                # that are containers need a walk, and a row of plain numbers and text has none
                # (its value types gathered in C, not a test per value)
                out = dict(obj)
                if _PLAIN_TYPES.issuperset(map(type, out.values())):
                    return out
                for k, v in out.items():
                    if isinstance(v, (dict, list, tuple)):
                        out[k] = self.redact(v, _depth + 1)
                return out
            out = {}
            for k, v in obj.items():
                if self.matches(k):
                    out[k] = REDACTED
                else:
                    out[k] = self.redact(v, _depth + 1)
                    if type(k) is str and len(clean) < 10_000:
                        clean.add(k)
            return out
        if isinstance(obj, (list, tuple)):
            return [self.redact(v, _depth + 1) for v in obj]
        return obj
