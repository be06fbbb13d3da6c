"""Alerts: policies over findings, deduplicated incidents, and the channels that carry them."""
