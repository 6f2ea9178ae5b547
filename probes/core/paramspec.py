"""How probe parameters are declared: plain frozen dataclasses, validated by pydantic only
when values come from outside (a config file, `--param`). A `lakeprobe run` with the
defaults never imports pydantic (benchmarks/cli_start.py, tests/test_cli_imports.py).

A field is `name: Annotated[type, Gt(0), Doc("...")] = default`: the bounds below become
annotated_types' when pydantic builds the schema (the same checks and messages as
`Field(gt=0)`; importing annotated_types costs a run ~5 ms), `Check(fn)` checks one field (its
error names that field), `Before(fn)` converts a value before the type check, and
`__post_init__` checks fields against each other (it also runs for `dataclasses.replace`).
Parameter classes set `__pydantic_config__ = PARAMS_CONFIG` (inherited by subclasses).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar, cast

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

# Unknown keys are errors; numbers are finite (probes compute deadlines from them).
PARAMS_CONFIG: Mapping[str, Any] = {"extra": "forbid", "allow_inf_nan": False}

P = TypeVar("P")


class _Bound:
    """A bound pydantic applies as the annotated_types constraint of the same name."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        import annotated_types

        constraint = getattr(annotated_types, type(self).__name__)(self.value)
        return handler(Annotated[source, constraint])


class Gt(_Bound):
    """Greater than."""


class Ge(_Bound):
    """Greater than or equal."""


class Le(_Bound):
    """Less than or equal."""


class MinLen(_Bound):
    """At least this many items."""


class MaxLen(_Bound):
    """At most this many items."""


# The markers are plain slotted classes, not dataclasses: every `lakeprobe run` loads this
# module, and a dataclass costs ~0.3 ms to create (benchmarks/RESULTS.md).
class Doc:
    """A parameter's one-line description (`lakeprobe list`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Converter:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


class Check(_Converter):
    """Check one field after its type: `fn` returns the value or raises ValueError."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.fn, handler(source))


class Before(_Converter):
    """Convert a raw value before the type check (e.g. '6h' to seconds)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self.fn, handler(source))


def validate_params(model: type[P], values: Mapping[str, Any]) -> P:
    """`values` (from YAML or --param) as `model`; pydantic.ValidationError names each bad
    key by its path."""
    return _adapter(cast(Any, model)).validate_python(values)


@functools.cache
def _adapter(model: Any) -> Any:
    """The parameter class's validator, built on its first use (pydantic loads here)."""
    from pydantic import TypeAdapter

    return TypeAdapter(model)


class ParamField(NamedTuple):
    """One parameter, as `lakeprobe list` and `--param` describe it."""

    annotation: Any  # the type without its Annotated metadata
    description: str | None
    default: Any  # dataclasses.MISSING when the key is required


def param_fields(model: type[Any]) -> dict[str, ParamField]:
    """The parameters of `model` by name, in declaration order."""
    hints = typing.get_type_hints(model, include_extras=True)
    found = {}
    for spec in dataclasses.fields(model):
        hint = hints[spec.name]
        metadata = getattr(hint, "__metadata__", ())
        docs = [m.text for m in metadata if isinstance(m, Doc)]
        default = spec.default
        if spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        found[spec.name] = ParamField(
            annotation=hint.__origin__ if metadata else hint,
            description=docs[0] if docs else None,
            default=default,
        )
    return found
