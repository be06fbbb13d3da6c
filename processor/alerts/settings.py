"""The ``alerts:`` section of the processor's config (scaffold: no keys yet)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infersight.processor.config import ConfigError

__all__ = ["AlertSettings", "parse_alerts"]


@dataclass(frozen=True)
class AlertSettings:
    pass


def parse_alerts(body: Mapping[str, Any], where: str) -> AlertSettings:
    for key in body:
        raise ConfigError(f"{where}.{key}: unknown key")
    return AlertSettings()
