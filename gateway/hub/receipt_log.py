"""The hash-chained receipt log: append inside the serialised transaction, verify offline.

An entry is the row of `receipt_log`; its `entry_hash` is the SHA-256 (hex) of
the canonical JSON of every other column, `prev_hash` included, so changing,
removing or moving any entry breaks the chain from there on. The hub keeps a
signed checkpoint of the head (the `log_head` row) and every receipt carries
the head after its batch, so a truncated tail is caught against either.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from gateway.hub import tables
from gateway.hub.db import GENESIS, utcnow
from gateway.protocol.canonical import canonical_json
from gateway.protocol.signing import b64
from gateway.protocol.suites import suite_of

ENTRY_FIELDS = (
    "seq", "time", "department", "key_id", "kind", "status", "batch_id", "counts", "request_digest", "summary", "prev_hash",
)


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({f: entry[f] for f in ENTRY_FIELDS})).hexdigest()


def head_message(log_seq: int, log_head: str) -> bytes:
    return canonical_json({"log_head": log_head, "log_seq": log_seq})


# Built once: this runs under the hub's write lock for every batch, refusal and read.
INSERT_ENTRY = insert(tables.receipt_log)
MOVE_HEAD = (
    update(tables.log_head)
    .where(tables.log_head.c.id == 1)
    .values(log_seq=bindparam("h_seq"), log_head=bindparam("h_head"), hub_seq=bindparam("h_hub_seq"),
            signature=bindparam("h_sig"), signed_at=bindparam("h_at"))
)


# The same two writes as plain SQL for a PostgreSQL caller that pipelines them (psycopg, named parameters).
PG_INSERT_ENTRY = (
    f"INSERT INTO receipt_log ({', '.join((*ENTRY_FIELDS, 'entry_hash'))}) "
    f"VALUES ({', '.join(f'%({c})s' for c in (*ENTRY_FIELDS, 'entry_hash'))})"
)
PG_MOVE_HEAD = ("UPDATE log_head SET log_seq = %(h_seq)s, log_head = %(h_head)s, hub_seq = %(h_hub_seq)s, "
                "signature = %(h_sig)s, signed_at = %(h_at)s WHERE id = 1")


@dataclass
class Appended:
    seq: int
    entry_hash: str
    time: str


def next_entry(
    head: dict,
    hub_key: Ed25519PrivateKey,
    *,
    kind: str,
    status: str,
    department: str | None = None,
    key_id: str | None = None,
    batch_id: str | None = None,
    counts: Mapping[str, int] | None = None,
    request_digest: str | None = None,
    summary: Mapping[str, Any] | None = None,
    hub_seq: int | None = None,
    time: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Appended]:
    """The next entry after `head` without writing it: (receipt_log row, MOVE_HEAD parameters, what `append` returns).

    Moves `head` (the dict) on. For a caller that sends the two writes with others in one round trip.
    """
    entry = {
        "seq": int(head["log_seq"]) + 1,
        "time": time or utcnow(),
        "department": department,
        "key_id": key_id,
        "kind": kind,
        "status": status,
        "batch_id": batch_id,
        "counts": canonical_json(dict(counts or {})).decode("utf-8"),
        "request_digest": request_digest,
        "summary": canonical_json(dict(summary or {})).decode("utf-8"),
        "prev_hash": head["log_head"],
    }
    h = entry["entry_hash"] = entry_hash(entry)
    sig = b64(suite_of(hub_key).sign(hub_key, head_message(entry["seq"], h)))
    new_hub_seq = head["hub_seq"] if hub_seq is None else hub_seq
    move = {"h_seq": entry["seq"], "h_head": h, "h_hub_seq": new_hub_seq, "h_sig": sig, "h_at": entry["time"]}
    head.update(log_seq=entry["seq"], log_head=h, hub_seq=new_hub_seq, signature=sig)
    return entry, move, Appended(entry["seq"], h, entry["time"])


def append(conn: Connection, head: dict, hub_key: Ed25519PrivateKey, **fields: Any) -> Appended:
    """Append one entry; `conn`/`head` come from `db.serialized`. Also moves the signed head.

    `fields`: those of `next_entry` (kind, status, department, key_id, batch_id, counts, request_digest,
    summary, hub_seq, time).
    """
    entry, move, appended = next_entry(head, hub_key, **fields)
    conn.execute(INSERT_ENTRY, entry)
    conn.execute(MOVE_HEAD, move)
    return appended


@dataclass
class LogVerdict:
    ok: bool
    entries: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return f"receipt log intact: {self.entries} entries, head {self.last_seq} {self.last_hash}"
        return "receipt log BROKEN:\n" + "\n".join(f"  {p}" for p in self.problems)


def _bad(v: LogVerdict, seq: int | None, message: str) -> None:
    v.ok = False
    if seq is not None and (v.first_bad_seq is None or seq < v.first_bad_seq):
        v.first_bad_seq = seq
    v.problems.append(message)


def verify_log(
    engine: Engine,
    heads: Iterable[tuple[int, str]] = (),
    hub_public_key: Ed25519PublicKey | None = None,
) -> LogVerdict:
    """Recompute the chain; name the first bad entry. `heads`: (log_seq, log_head) pairs a gateway holds.

    Streams the log in seq order, so memory stays flat for millions of entries.
    """
    v = LogVerdict(ok=True)
    wanted = {}
    for s, h in heads:
        wanted.setdefault(int(s), set()).add(h)
    seen: dict[int, str] = {}
    prev_seq, prev_hash = 0, GENESIS
    cols = [tables.receipt_log.c[f] for f in ENTRY_FIELDS] + [tables.receipt_log.c.entry_hash]
    with engine.connect() as conn:
        checkpoint = conn.execute(select(tables.log_head).where(tables.log_head.c.id == 1)).mappings().first()
        result = conn.execution_options(yield_per=2000).execute(select(*cols).order_by(tables.receipt_log.c.seq))
        for row in result.mappings():
            seq = int(row["seq"])
            v.entries += 1
            if seq != prev_seq + 1:
                _bad(v, prev_seq + 1, f"entry {prev_seq + 1}" + (f"..{seq - 1}" if seq - 1 > prev_seq + 1 else "")
                     + f" missing: the log jumps from {prev_seq} to {seq} (deleted)")
            elif row["prev_hash"] != prev_hash:
                _bad(v, seq, f"entry {seq}: prev_hash does not match entry {prev_seq} (an entry before it was altered, moved or replaced)")
            if entry_hash(row) != row["entry_hash"]:
                _bad(v, seq, f"entry {seq}: content does not match its entry_hash (altered or moved)")
            if seq in wanted:
                seen[seq] = row["entry_hash"]
            prev_seq, prev_hash = seq, row["entry_hash"]
    v.last_seq, v.last_hash = prev_seq, prev_hash
    for s, hs in sorted(wanted.items()):
        for h in hs:
            if s > prev_seq:
                _bad(v, prev_seq + 1, f"truncated: a gateway holds a signed head at entry {s}, the log ends at {prev_seq}")
            elif seen.get(s) != h:
                _bad(v, s, f"entry {s}: differs from the head a gateway holds ({h[:16]}…)")
    if checkpoint is not None and checkpoint["log_seq"]:
        cs, ch = int(checkpoint["log_seq"]), checkpoint["log_head"]
        if hub_public_key is not None:
            try:
                hub_public_key.verify(base64.b64decode(checkpoint["signature"] or ""), head_message(cs, ch))
            except (InvalidSignature, ValueError):
                _bad(v, None, "the hub's head checkpoint signature does not verify")
        if cs > prev_seq:
            _bad(v, prev_seq + 1, f"truncated: the hub's signed head is at entry {cs}, the log ends at {prev_seq}")
        elif cs == prev_seq and ch != prev_hash:
            _bad(v, cs, f"entry {cs}: differs from the hub's signed head checkpoint")
    return v
