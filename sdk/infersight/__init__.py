"""infersight: operational and ML health for model servers, on OpenTelemetry."""

from infersight.request_context import current_request_id
from infersight.sketch import ExpHistogram

__version__ = "0.1.0"
__all__ = ["current_request_id", "ExpHistogram", "__version__"]
