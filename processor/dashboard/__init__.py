"""The processor's web dashboard: pages at ``/``, ``/models/{model}`` and ``/requests/{id}``,
their assets, and the JSON they read (see :mod:`infersight.processor.dashboard.routes`), plus
the ``dashboard:`` config section (:mod:`infersight.processor.dashboard.settings`).

Example:
    >>> from infersight.processor.dashboard import parse_dashboard
    >>> parse_dashboard({}, "dashboard").keep
    'all'
"""

from infersight.processor.dashboard.routes import dashboard_routes
from infersight.processor.dashboard.settings import DashboardSettings, parse_dashboard

__all__ = ["dashboard_routes", "DashboardSettings", "parse_dashboard"]
