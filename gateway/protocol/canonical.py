"""Canonical JSON: the one byte form of a record that is hashed and signed.

UTF-8, object keys sorted, no insignificant white space, strings with non-ASCII
kept as is, integers as integers and other numbers in their shortest
round-trip form. For the value types records hold (str, int, float, bool,
None, lists, objects) this matches RFC 8785 (JCS) except that keys sort by
code point rather than UTF-16 unit, which is the same for the BMP.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS


def canonical_json(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS)


def record_version(data: Any) -> str:
    """The `version` of a record: sha256 of its canonical JSON, hex."""
    return hashlib.sha256(canonical_json(data)).hexdigest()
