"""Raw-row digests: recognise an unchanged source row before mapping and validating it.

A full scan (the fingerprint strategy, a cursor source's re-read after a mapping
change or inside its lag window) reads rows that mostly did not change. Mapping
and validating each costs far more than hashing it, so each stored fingerprint
keeps ``row_hash``: a digest of the raw row *and* of everything the mapping's
output depends on (``inputs_digest``). When a row's digest equals the stored one,
mapping it again would give the stored version, so the sync only marks it seen.

What the output depends on: the mapping text and version, the record type, the
gateway's code version (a release may normalise differently), the validation
context (extra units, the category code table) and CSV lookup tables. A mapping
with ``lookup = {source = ...}`` depends on another source's rows that are not
hashed here, so such a mapping gets no digest and every row is mapped as before.
Validation's only dependence on the date is "not in the future", which a valid
row never fails later, so a skipped row is one that would still be valid.

Rows compare by their values as serialised here (numbers type-tagged, so the
text "1.5" and the number 1.5 differ). Two rows that serialise alike map alike,
except: a float NaN or infinity serialises like NULL (such a row is rejected by
validation anyway, so skipping it only leaves it out of the rejected count); a
date or time serialises as its ISO text, like a text column holding that text
(only a change of the column's type would meet that, and the date conversions
read both alike).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

import gateway
from gateway.config import GatewayConfig, SourceConfig
from gateway.mappings import CompiledMapping

FORMAT = b"gateway-row-hash-1"


def _tagged(v: Any) -> Any:
    # What orjson does not write itself (Decimal, bytes, ...): tagged with the type, so
    # Decimal("1.5") and the text "1.5" differ. Dates and times are orjson's own ISO text
    # (tagging them too costs ~8x: orjson's passthrough path is slow).
    if isinstance(v, bytes | bytearray | memoryview):
        return ("\x00bytes", bytes(v).hex())
    return ("\x00" + v.__class__.__name__, str(v))


def _lookups(node: Any, out: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("lookup"), dict):
            out.append(node["lookup"])
        for v in node.values():
            _lookups(v, out)
    elif isinstance(node, list):
        for v in node:
            _lookups(v, out)


def inputs_digest(config: GatewayConfig, sc: SourceConfig, mapping: CompiledMapping) -> bytes | None:
    """Digest of what mapping a row depends on besides the row; None when that cannot be told."""
    h = hashlib.blake2b(FORMAT, digest_size=16)
    # pyarrow's version: the batch path's digests (arrowhash.py) hash the Arrow types adapters get from it.
    for part in (gateway.__version__, pa.__version__, mapping.record_type, str(mapping.version), mapping.text):
        h.update(b"\x00" + part.encode())
    h.update(orjson.dumps(sorted(config.extra_units)))
    if config.category_codes is not None:
        try:
            h.update(Path(config.category_codes).read_bytes())
        except OSError:
            return None
    try:
        doc = tomllib.loads(mapping.text)
    except tomllib.TOMLDecodeError:  # pragma: no cover - a compiled mapping parsed already
        return None
    lookups: list[dict[str, Any]] = []
    _lookups(doc, lookups)
    base = sc.mapping.parent if sc.mapping is not None else Path.cwd()
    for spec in lookups:
        if "csv" not in spec:
            return None  # another source's rows: not hashed here, so always map
        path = Path(str(spec["csv"]))
        try:
            h.update((path if path.is_absolute() else base / path).read_bytes())
        except OSError:
            return None
    return h.digest()


def row_hash(data: Mapping[str, Any], inputs: bytes) -> bytes:
    """Digest of one raw source row under the mapping inputs `inputs`."""
    return hashlib.blake2b(orjson.dumps(data, default=_tagged, option=orjson.OPT_NON_STR_KEYS), digest_size=16, key=inputs).digest()


def row_hashes(rows: Iterable[Mapping[str, Any]], inputs: bytes) -> list[bytes]:
    """row_hash of each row, the same digests: the keyed state is set up once and copied per row."""
    base = hashlib.blake2b(digest_size=16, key=inputs)
    dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS
    out: list[bytes] = []
    for data in rows:
        h = base.copy()
        h.update(dumps(data, default=_tagged, option=option))
        out.append(h.digest())
    return out
