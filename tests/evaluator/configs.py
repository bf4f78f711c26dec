"""Changing one field of a typed stage config in a test, validated as a new config would be."""

from __future__ import annotations

from typing import Any, TypeVar

from evaluator.stage_configs import StageConfigModel

M = TypeVar("M", bound=StageConfigModel)


def with_fields(config: M, **changes: Any) -> M:
    """`config` with `changes`, checked like a config parsed from a spec (`model_copy` does not
    validate; the stages rely on their configs' checks)."""
    return type(config).model_validate({**config.model_dump(), **changes})
