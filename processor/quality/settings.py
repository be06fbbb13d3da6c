"""The ``quality:`` section of the processor's config (scaffold: no keys yet)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infersight.processor.config import ConfigError

__all__ = ["QualitySettings", "parse_quality"]


@dataclass(frozen=True)
class QualitySettings:
    pass


def parse_quality(body: Mapping[str, Any], where: str) -> QualitySettings:
    for key in body:
        raise ConfigError(f"{where}.{key}: unknown key")
    return QualitySettings()
