"""Strict JSON for signed documents: a member name may occur once per object.

`{"department": "B", "department": "A"}` means A to one parser and B to another
(the last wins in orjson and json, the first in some others), so a signed
document with a repeated member name has no single meaning and is refused,
whatever the depth. `loads_strict` is the one decoder for batches (hub) and
receipts (gateway).

Fast path: orjson parses, and a body that is byte for byte the canonical
encoding of what was parsed cannot hold a repeated name (the canonical form
is written from a dict). Every body our gateways and hub sign is canonical,
so the common case costs one canonical re-encoding. Any other body is checked
by the standard library's parser with an `object_pairs_hook`, which sees every
member; only when that finds a repeat is the document walked again to name
its path. `tests/test_strictjson.py` proves the two paths agree.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from gateway.protocol.canonical import canonical_json


class DuplicateMember(ValueError):
    """A JSON object repeats a member name; `path` is where the object is (`$`, `$.records[3].data`)."""

    def __init__(self, member: str, path: str) -> None:
        super().__init__(f"成员名 {member!r} 在 {path} 重复出现 / duplicate member name {member!r} at {path}")
        self.member, self.path = member, path


class _Repeated(Exception):
    pass


def loads_strict(data: bytes | str) -> Any:
    """orjson.loads (same result, same JSONDecodeError) that also raises DuplicateMember."""
    doc = orjson.loads(data)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not isinstance(doc, dict | list) or _canonical(doc) == raw:
        return doc  # a scalar has no members; a canonical body none repeated
    check_members(raw)
    return doc


def _canonical(doc: Any) -> bytes | None:
    try:
        return canonical_json(doc)
    except TypeError:  # orjson writes 254 levels but reads 1024: let the slow path judge
        return None


def _no_repeat(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({k for k, _ in pairs}) != len(pairs):
        raise _Repeated
    return None  # the values are not kept: orjson's result is the document


def check_members(raw: bytes) -> None:
    """Raise DuplicateMember if any object in the JSON text `raw` repeats a member name (the slow path)."""
    try:
        json.loads(raw, object_pairs_hook=_no_repeat)
    except _Repeated:
        pass
    except RecursionError:
        # orjson takes 1024 levels, this parser somewhat fewer: such a body is refused as not JSON.
        raise orjson.JSONDecodeError(
            "JSON 嵌套过深 / JSON nested too deeply", raw.decode("utf-8", "replace"), 0
        ) from None
    else:
        return
    member, path = _first_repeat(json.loads(raw, object_pairs_hook=_Pairs))
    raise DuplicateMember(member, path)


class _Pairs(list):  # type: ignore[type-arg]
    """An object as the list of its members, repeats kept."""


def _first_repeat(doc: Any) -> tuple[str, str]:
    """The first repeated name in document order, outer objects first, and its object's path."""
    stack: list[tuple[Any, str]] = [(doc, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for k, _ in node:
                if k in seen:
                    return k, path
                seen.add(k)
            stack.extend(
                (v, f"{path}.{k}" if k.isidentifier() else f"{path}[{json.dumps(k, ensure_ascii=False)}]")
                for k, v in reversed(node)
            )
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    raise AssertionError("no repeated member found")  # pragma: no cover (check_members saw one)
