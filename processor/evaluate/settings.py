"""The ``models:`` and ``evaluation:`` sections of the processor's config (scaffold: no keys yet)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infersight.processor.config import ConfigError

__all__ = ["ModelsSettings", "EvaluationSettings", "parse_models", "parse_evaluation"]


@dataclass(frozen=True)
class ModelsSettings:
    pass


@dataclass(frozen=True)
class EvaluationSettings:
    pass


def _no_keys(body: Mapping[str, Any], where: str) -> None:
    for key in body:
        raise ConfigError(f"{where}.{key}: unknown key")


def parse_models(body: Mapping[str, Any], where: str) -> ModelsSettings:
    _no_keys(body, where)
    return ModelsSettings()


def parse_evaluation(body: Mapping[str, Any], where: str) -> EvaluationSettings:
    _no_keys(body, where)
    return EvaluationSettings()
