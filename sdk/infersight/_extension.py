"""The optional C extension :mod:`infersight._speedups`, or ``None``: the one switch for it.

Every module with a C path (the span encoder, the row converters, the sketch) reads the
extension from here, so ``INFERSIGHT_PURE_PYTHON=1`` (read once, at import) turns all of them
off together and an install built without a C compiler runs the Python references everywhere.

Example:
    >>> from infersight._extension import speedups
    >>> speedups is None or hasattr(speedups, "sketch_rows")
    True
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["speedups"]


def _load() -> Any:
    """The C extension, unless turned off or not built."""
    if os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1":
        return None
    try:
        from infersight import _speedups as ext
    except ImportError:
        return None
    return ext


speedups: Any = _load()
