"""A compiled fast path for `normalize` on records that arrive as dicts (the hub checks every record it receives).

    clean = fast_normalize("stock", data, ref, context)   # the canonical record, or None
    clean, errors = normalize_checked("stock", data)      # always exactly what normalize() returns

A record's field set (its keys, in order) is its *shape*; records from one
source share a handful of shapes. Per record type and shape the gateway's own
one-pass `fused_normalizer` is built once, reading just the fields present,
the shape already known to hold no unknown field and every required one. The
per-record loop then does no membership tests, builds no error lists and
sets up one exception handler instead of one per field.

`fast_normalize` answers only "valid, and this is the canonical record" or
"not sure" (None): on None the caller runs `normalize`, which reports every
problem. So the errors always come from `normalize` itself; whenever the fast
path returns a record it equals ``normalize(...)[0]`` and normalize would
have found no error (tests/test_standard_compiled.py checks both on
generated good and bad records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from gateway import localtime
from gateway.standard.validate import DEFAULT_CONTEXT, FieldError, ValidationContext, _plan, fused_normalizer, normalize

MAX_SHAPES = 256  # per record type; a source sending more distinct field sets than this only recompiles more often

_Run = Callable[..., "dict | None"]


class _TypeValidator:
    """Per record type: a fused_normalizer per (context, shape), each reading the shape's own fields by name."""

    def __init__(self, type_name: str) -> None:
        plan = _plan(type_name)
        self.type_name = type_name
        self.fields = plan.fields
        self.required = frozenset(name for name, _, required, _ in plan.steps if required)
        self.shapes: dict[tuple[int, tuple], _Run | None] = {}

    def compile(self, shape: tuple, ctx: ValidationContext) -> _Run | None:
        """The fast path for records with these keys; None when normalize must run (unknown or missing required field)."""
        keys = set(shape)
        if not keys <= self.fields.keys() or not self.required <= keys:
            return None
        return fused_normalizer(self.type_name, {k: k for k in shape}, ctx)

    def __call__(self, data: Mapping[str, Any], ref: date, ctx: ValidationContext) -> dict | None:
        # id(ctx) cannot be reused while cached: a built normalizer holds its context alive (a None
        # entry holds none, but it does not depend on the context).
        shape = (id(ctx), tuple(data))
        try:
            run = self.shapes[shape]
        except KeyError:
            if len(self.shapes) >= MAX_SHAPES:
                self.shapes.clear()
            run = self.shapes[shape] = self.compile(shape[1], ctx)
        return None if run is None else run(data, ref)


_VALIDATORS: dict[str, _TypeValidator] = {}


def validator(record_type: str) -> _TypeValidator:
    v = _VALIDATORS.get(record_type)
    if v is None:
        v = _VALIDATORS[record_type] = _TypeValidator(record_type)
    return v


def fast_normalize(record_type: str, data: Mapping[str, Any], ref: date, context: ValidationContext) -> dict | None:
    """The canonical record when `data` is valid (as normalize would return it), else None: then run normalize.

    `ref` is the reference date normalize would use (``context.today or localtime.today()``).
    """
    return validator(record_type)(data, ref, context)


def normalize_checked(
    record_type: str, data: Mapping[str, Any], *, today: date | None = None, context: ValidationContext | None = None
) -> tuple[dict, list[FieldError]]:
    """Exactly `normalize(record_type, data, today=today, context=context)`, valid records through the fast path."""
    ctx = context or DEFAULT_CONTEXT
    ref = today or ctx.today or localtime.today()
    clean = validator(record_type)(data, ref, ctx)
    if clean is not None:
        return clean, []
    return normalize(record_type, data, today=ref, context=ctx)
