"""Alerts: policies over findings, deduplicated incidents, and the channels that carry them.

Example:
    >>> from infersight.processor.alerts import AlertManager, parse_alerts
    >>> parse_alerts({}, "alerts").policies[0].name
    'drift'
"""

from infersight.processor.alerts.manager import AlertManager, Notification
from infersight.processor.alerts.settings import AlertSettings, parse_alerts

__all__ = ["AlertManager", "Notification", "AlertSettings", "parse_alerts"]
