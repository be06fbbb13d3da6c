"""infersight: operational and ML health for model servers, on OpenTelemetry.

Example:
    >>> import infersight
    >>> infersight.configure(service_name="churn-api", exporter="none", log_output="none")
    >>> @infersight.monitor(model="churn", version="3")
    ... def predict(row):
    ...     return 0.7
    >>> predict({"tenure": 12, "plan": "pro"})
    0.7

The public names load on first use (PEP 562): ``import infersight.stats`` and the
``infersight profile`` / ``drift`` commands never need the OpenTelemetry SDK or structlog, which
the request path pulls in and which cost a command more than its numpy does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ below loads them
    from infersight._api import configure, flush, record_feedback, shutdown
    from infersight._monitor import SchemaViolation, monitor
    from infersight.config import ConfigError, Settings
    from infersight.request_context import current_request_id, last_request_id
    from infersight.slices import Slicer
    from infersight.stats.sketch import ExpHistogram

__version__ = "0.1.0"
__all__ = [
    "configure",
    "monitor",
    "current_request_id",
    "last_request_id",
    "record_feedback",
    "flush",
    "shutdown",
    "SchemaViolation",
    "ConfigError",
    "Settings",
    "ExpHistogram",
    "Slicer",
    "__version__",
]

# Public name → the module that defines it. The decorator lives in ``_monitor`` (not
# ``monitor``) because importing a submodule sets it as an attribute of the package, which
# would hide the function ``infersight.monitor`` behind the module of the same name.
_WHERE = {
    "configure": "infersight._api",
    "flush": "infersight._api",
    "record_feedback": "infersight._api",
    "shutdown": "infersight._api",
    "monitor": "infersight._monitor",
    "SchemaViolation": "infersight._monitor",
    "ConfigError": "infersight.config",
    "Settings": "infersight.config",
    "current_request_id": "infersight.request_context",
    "last_request_id": "infersight.request_context",
    "ExpHistogram": "infersight.stats.sketch",
    "Slicer": "infersight.slices",
}


if not TYPE_CHECKING:  # hidden from type checkers, so a misspelt name stays an error for them

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module 'infersight' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
