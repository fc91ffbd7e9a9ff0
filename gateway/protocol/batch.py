"""The batch format a gateway pushes, and protocol version negotiation.

A batch body is canonical JSON:

    {"protocol": "1", "batch_id": uuid, "department": code, "source": name, "created": iso,
     "records": [{"type", "department", "key", "op", "seq", "version", "updated_at",
                  "provenance": {"source", "source_key", "mapping_version", "operator"},
                  "data": {...} | null}]}

The protocol version is sent both in the body (`protocol`) and in the
`Protocol-Version` request header; the hub answers with the version it used in
the same header. Versions are "<major>" or "<major>.<minor>": a hub accepts any
minor of a major it supports and refuses an unknown major with 400 and the list
of supported versions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.protocol.canonical import canonical_json
from gateway.protocol.strictjson import loads_strict

PROTOCOL_VERSION = "1"
# 1.1: the client asks for compact receipts (accepted records as a Merkle root, gateway.protocol.merkle).
COMPACT_VERSION = "1.1"
SUPPORTED_VERSIONS = ("1", COMPACT_VERSION)
VERSION_HEADER = "Protocol-Version"
OPS = ("upsert", "delete")
RECORD_FIELDS = ("type", "department", "key", "op", "seq", "version", "updated_at", "provenance", "data")
PROVENANCE_FIELDS = ("source", "source_key", "mapping_version", "operator")
MAX_SEQ = 2**63 - 1  # a signed 64-bit integer in the hub's database


class UnsupportedProtocol(Exception):
    def __init__(self, version: str) -> None:
        super().__init__(
            f"不支持的协议版本 {version!r}，支持 {', '.join(SUPPORTED_VERSIONS)} / "
            f"unsupported protocol version {version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
        self.version = version
        self.supported = SUPPORTED_VERSIONS


class BatchMalformed(Exception):
    """The batch as a whole cannot be read; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _minor(version: str) -> int:
    _, _, minor = version.partition(".")
    return int(minor) if minor.isdigit() else 0


def negotiate(version: str | None) -> str:
    """The supported version to use for a client that speaks `version` (None: the current one): the highest
    of the hub's with the same major and a minor not above the client's (an unreadable minor counts as 0)."""
    if version is None or version == "":
        return PROTOCOL_VERSION
    text = str(version).strip()
    major = text.split(".", 1)[0]
    same = [v for v in SUPPORTED_VERSIONS if v.split(".", 1)[0] == major]
    if not same:
        raise UnsupportedProtocol(str(version))
    fitting = [v for v in same if _minor(v) <= _minor(text)] or same[:1]
    return max(fitting, key=_minor)


def wants_compact(version: str | None) -> bool:
    """Whether a client speaking `version` asked for compact receipts (1.1 and later minors of 1)."""
    return negotiate(version) == COMPACT_VERSION


def make_record(
    type: str,
    department: str,
    key: str,
    op: str,
    seq: int,
    version: str,
    data: Mapping[str, Any] | None,
    *,
    updated_at: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    prov = {f: None for f in PROVENANCE_FIELDS}
    prov.update(provenance or {})
    return {
        "type": type,
        "department": department,
        "key": key,
        "op": op,
        "seq": seq,
        "version": version,
        "updated_at": updated_at,
        "provenance": prov,
        "data": None if op == "delete" else dict(data or {}),
    }


def make_batch(
    department: str,
    source: str,
    records: Iterable[Mapping[str, Any]],
    *,
    batch_id: str | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL_VERSION,
        "batch_id": batch_id or str(uuid.uuid4()),
        "department": department,
        "source": source,
        "created": created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "records": [dict(r) for r in records],
    }


def encode_batch(batch: Mapping[str, Any]) -> bytes:
    return canonical_json(batch)


@dataclass
class Batch:
    protocol: str
    batch_id: str
    department: str
    source: str
    created: str
    records: list[dict[str, Any]]


def parse_batch(body: bytes) -> Batch:
    """Read a batch body; raises BatchMalformed (all problems), UnsupportedProtocol, or DuplicateMember
    (a member name repeated anywhere: the signed body would have more than one meaning).

    Only the envelope of the batch is checked here. Each record's own envelope is
    checked by `record_problems`, so that one bad record is rejected alone.
    """
    try:
        doc = loads_strict(body)
    except orjson.JSONDecodeError as e:
        raise BatchMalformed([f"请求体不是合法 JSON / body is not JSON: {e}"]) from None
    if not isinstance(doc, dict):
        raise BatchMalformed(["请求体须为 JSON 对象 / body must be a JSON object"])
    problems: list[str] = []
    if isinstance(doc.get("protocol"), str) and doc["protocol"]:
        negotiate(doc["protocol"])  # raises UnsupportedProtocol for an unknown major
    for f in ("protocol", "batch_id", "department", "source", "created"):
        if not isinstance(doc.get(f), str) or not doc.get(f):
            problems.append(f"{f}: 缺少或不是字符串 / missing or not a string")
    bid = doc.get("batch_id")
    if isinstance(bid, str) and bid:
        try:
            uuid.UUID(bid)
        except ValueError:
            problems.append(f"batch_id: {bid!r} 不是 UUID / not a UUID")
    recs = doc.get("records")
    if not isinstance(recs, list):
        problems.append("records: 须为数组 / must be an array")
    elif not all(isinstance(r, dict) for r in recs):
        problems.append("records: 每条记录须为 JSON 对象 / every record must be an object")
    if problems:
        raise BatchMalformed(problems)
    return Batch(
        protocol=doc["protocol"],
        batch_id=str(uuid.UUID(doc["batch_id"])),
        department=doc["department"],
        source=doc["source"],
        created=doc["created"],
        records=recs,
    )


def _iso_time(v: object) -> bool:
    if not isinstance(v, str) or len(v) > 40:
        return False
    try:
        dt.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def envelope_ok(rec: Mapping[str, Any]) -> bool:
    """True only if `record_problems(rec)` is empty: the common case in one pass of cheap tests (the hub
    checks every record). False means "run record_problems", which names each problem."""
    get = rec.get
    op, seq, data, updated = get("op"), get("seq"), get("data"), get("updated_at")
    return (
        get("type").__class__ is str and get("department").__class__ is str and get("key").__class__ is str
        and get("version").__class__ is str
        and seq.__class__ is int and 0 <= seq <= MAX_SEQ
        and (data.__class__ is dict if op == "upsert" else op == "delete" and data is None)
        and get("provenance", {}).__class__ is dict
        and (updated is None or _iso_time(updated))
    )


def record_problems(rec: Mapping[str, Any]) -> list[tuple[str, object, str, str]]:
    """Envelope problems of one record as (field, value, rule, message)."""
    out: list[tuple[str, object, str, str]] = []
    for f in ("type", "department", "key", "version"):
        if not isinstance(rec.get(f), str):
            out.append((f, rec.get(f), "envelope", f"{f} 缺少或不是字符串 / {f} missing or not a string"))
    if rec.get("op") not in OPS:
        out.append(("op", rec.get("op"), "envelope", "op 须为 upsert 或 delete / op must be upsert or delete"))
    seq = rec.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not (0 <= seq <= MAX_SEQ):
        out.append(("seq", seq, "envelope", "seq 须为 0 至 2^63-1 的整数 / seq must be an integer from 0 to 2^63-1"))
    if rec.get("updated_at") is not None and not _iso_time(rec.get("updated_at")):
        out.append(("updated_at", rec.get("updated_at"), "envelope", "updated_at 须为 ISO 8601 时间 / must be an ISO 8601 time"))
    if not isinstance(rec.get("provenance", {}), dict):
        out.append(("provenance", rec.get("provenance"), "envelope", "provenance 须为对象 / provenance must be an object"))
    data = rec.get("data")
    if rec.get("op") == "upsert" and not isinstance(data, dict):
        out.append(("data", data, "envelope", "upsert 须带 data 对象 / upsert needs a data object"))
    if rec.get("op") == "delete" and data is not None:
        out.append(("data", data, "envelope", "delete 的 data 须为 null / delete carries data null"))
    return out
