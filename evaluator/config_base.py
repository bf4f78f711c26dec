"""What every stage config model shares: the base model, the error, and the parse that names
the field.

`StageConfigModel` is frozen, refuses unknown fields and refuses inf and NaN. `validate_config`
builds one from plain data and turns pydantic's first error into a `StageConfigError` whose
`field` is the dotted path of the bad field (`model.n_head`) and whose message says what to do;
checks across fields raise `StageConfigError` themselves and are re-rooted at the nested field.

This module imports only the standard library and pydantic, and knows no stage: the models live
in `evaluator.stage_configs` and `evaluator.hf.config`, and `parse_stage_config` picks one by stage
name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class StageConfigError(ValueError):
    """A stage config that cannot be used. `field` is the dotted path of the bad field inside the
    config (`model.n_head`; "" when no one field is to blame), `reason` says what is wrong with it
    and what to do, and `message` is the sentence that names the field (also `str(error)`)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        self.message = f"{field}: {reason}" if field else reason
        super().__init__(self.message)


class StageConfigModel(BaseModel):
    """Frozen, no unknown fields, no inf or NaN: the base of every stage config model."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


M = TypeVar("M", bound=StageConfigModel)


def validate_config(cls: type[M], values: object) -> M:
    """`cls` built from plain data (lists for tuples, mappings for nested settings), or a
    StageConfigError naming the first bad field."""
    if not isinstance(values, Mapping):
        raise StageConfigError(
            "", f"a stage config must be a mapping of {cls.__name__} fields, got {values!r}"
        )
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        raise _named(cls, exc) from None


# What a value of the wrong type must be, by pydantic error type.
_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "finite_number": "a finite number",
}


def _named(cls: type[BaseModel], exc: ValidationError) -> StageConfigError:
    """The first error of `exc` as a StageConfigError with the field's dotted path."""
    return config_error(cls, exc.errors(include_url=False)[0])


def config_error(cls: type[BaseModel], error: Any) -> StageConfigError:
    """One pydantic error of a `cls` config (its `loc` relative to the config) as a
    StageConfigError naming the field: the one wording of config errors, whether the config came
    alone (`parse_stage_config`) or inside a campaign spec."""
    path = [part for part in error["loc"] if isinstance(part, str)]
    items = [part for part in error["loc"] if isinstance(part, int)]  # positions in a list
    where = ".".join(path)
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, StageConfigError):  # a model's own check, from inside `where`
        return StageConfigError(".".join(p for p in (where, cause.field) if p), cause.reason)
    return StageConfigError(where, _reason(cls, path, kind, value, ctx, items) or error["msg"])


def _reason(
    cls: type[BaseModel], path: list[str], kind: str, value: Any, ctx: dict, items: list[int]
) -> str:
    """What pydantic's error of type `kind` at `path` means, in the words a spec author needs."""
    if kind == "extra_forbidden":
        owner = _model_at(cls, path[:-1])
        return f"unknown field; {owner.__name__} has {sorted(owner.model_fields)}"
    if kind == "missing":
        return "is required"
    if kind in _EXPECTED:
        item = f"item {items[-1]} " if items else ""
        return f"{item}must be {_EXPECTED[kind]}, got {value!r}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of {_model_at(cls, path).__name__} fields, got {value!r}"
    cause = ctx.get("error")
    return str(cause) if cause is not None else ""


def _model_at(cls: type[BaseModel], path: list[str]) -> type[BaseModel]:
    """The config model at `path` below `cls` (a nested field's class), or the deepest found."""
    for name in path:
        field = cls.model_fields.get(name)
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is None:
            return cls
        cls = nested
    return cls


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The config model an annotation holds (`X` or `X | None`), if any."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
