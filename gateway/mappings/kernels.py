"""Built-in text transforms as Arrow kernels, for the bulk path (gateway.mappings.vectorised).

    kernel = text_kernel(["trim", {"null_if": ["-", "无"]}])   # None: some step has no kernel here
    out = kernel(column)                                        # None: not for these values (go by value)

Each kernel gives, on a column of text (Python str or null), exactly what the transform in
gateway/mappings/transforms.py gives for each value; the rest of a chain keeps that type.
Only steps that are exact on every text are here: ``upper``/``lower`` only when the column is
ASCII (Python's casing of other scripts is not Arrow's), ``default`` only with a text value.
The row closures stay the reference: tests/test_mapping_vectorised.py compares the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gateway.standard.columns import PY_WHITESPACE

Kernel = Callable[[pa.Array], pa.Array | None]
_NULL = pa.scalar(None, pa.string())


def _strip(col: pa.Array) -> pa.Array:
    return pc.utf8_trim(col, PY_WHITESPACE)  # str.strip(): every character c.isspace() holds for


def _trim(col: pa.Array) -> pa.Array:
    # v.strip().replace("\u3000", " ").strip() or None: after the first strip no \u3000 is at an end.
    out = pc.replace_substring(_strip(col), "\u3000", " ")
    return pc.if_else(pc.equal(out, ""), _NULL, out)


def _null_if(arg: Any) -> Kernel:
    values = arg if isinstance(arg, list) else [arg]
    blank = pa.array(sorted({str(x).strip() for x in values}), pa.string())
    return lambda col: pc.if_else(pc.fill_null(pc.is_in(_strip(col), value_set=blank), False), _NULL, col)


def _case(upper: bool) -> Kernel:
    def run(col: pa.Array) -> pa.Array | None:
        if not pc.all(pc.fill_null(pc.string_is_ascii(col), True)).as_py():
            return None
        return pc.ascii_upper(col) if upper else pc.ascii_lower(col)

    return run


def _default(value: str) -> Kernel:
    fill = pa.scalar(value, pa.string())
    return lambda col: pc.if_else(pc.fill_null(pc.equal(_strip(col), ""), True), fill, col)


def _step(name: str, arg: Any) -> Kernel | None:
    if name == "trim" and arg is None:
        return _trim
    if name == "str" and arg is None:
        return lambda col: col  # text stays as it is
    if name == "null_if" and arg is not None:
        return _null_if(arg)
    if name in ("upper", "lower") and arg is None:
        return _case(name == "upper")
    if name == "default" and isinstance(arg, str):
        return _default(arg)
    return None


def text_kernel(steps: list[Any]) -> Kernel | None:
    """The chain (transform steps as a mapping file gives them) as one kernel, or None."""
    kernels: list[Kernel] = []
    for step in steps:
        if isinstance(step, str):
            name, arg = step, None
        elif isinstance(step, dict) and len(step) == 1:
            ((name, arg),) = step.items()
        else:
            return None
        k = _step(name, arg)
        if k is None:
            return None
        kernels.append(k)
    if not kernels:
        return None

    def run(col: pa.Array) -> pa.Array | None:
        if pa.types.is_large_string(col.type):
            col = col.cast(pa.string())
        if not pa.types.is_string(col.type):
            return None
        for k in kernels:
            out = k(col)
            if out is None:
                return None
            col = out
        return col

    return run
