"""infersight: operational and ML health for model servers, on OpenTelemetry.

Example:
    >>> import infersight
    >>> infersight.configure(service_name="churn-api", exporter="none", log_output="none")
    >>> @infersight.monitor(model="churn", version="3")
    ... def predict(row):
    ...     return 0.7
    >>> predict({"tenure": 12, "plan": "pro"})
    0.7
"""

from infersight._api import configure, flush, record_feedback, shutdown
from infersight.config import ConfigError, Settings
from infersight.monitor import SchemaViolation, monitor
from infersight.request_context import current_request_id, last_request_id
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
    "__version__",
]
