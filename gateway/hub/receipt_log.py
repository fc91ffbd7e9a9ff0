"""The hash-chained receipt log: append inside the serialised transaction, verify offline.

An entry is the row of `receipt_log`; its `entry_hash` is the hash (hex) of
the canonical JSON of every other column, `prev_hash` included, so changing,
removing or moving any entry breaks the chain from there on. The hash is the
hub key's suite's: SHA-256 under `ed25519`, SM3 under `sm2-sm3`. Each entry
names its own in `hash_alg` (NULL: SHA-256, as every entry before the suites;
"sm3" is then hashed with the entry, so it cannot be changed alone), so
`verify_log` never guesses and a log that changed suite verifies across the change. The hub keeps a
signed checkpoint of the head (the `log_head` row) and every receipt carries
the head after its batch, so a truncated tail is caught against either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from gateway.hub import tables
from gateway.hub.db import GENESIS, utcnow
from gateway.protocol.canonical import canonical_json
from gateway.protocol.receipts import head_message, verify_head
from gateway.protocol.signing import b64
from gateway.protocol.suites import SM2_SM3, PrivateKey, PublicKey, suite_of

ENTRY_FIELDS = (
    "seq", "time", "department", "key_id", "kind", "status", "batch_id", "counts", "request_digest", "summary", "prev_hash",
)


SHA256 = "sha-256"
# The entry hashes by name; SM3 from the sm2-sm3 suite (tongsuopy), imported only when an entry uses it.
ENTRY_HASHES: dict[str, Callable[[bytes], bytes]] = {
    SHA256: lambda data: hashlib.sha256(data).digest(),
    SM2_SM3.digest_name: SM2_SM3.digest,
}


def hash_alg_for(hub_key: PrivateKey) -> str | None:
    """The `hash_alg` of entries appended with `hub_key`: None (SHA-256, unchanged form) or the suite's digest."""
    name = suite_of(hub_key).digest_name
    return None if name == SHA256 else name


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The entry's hash; KeyError for a `hash_alg` no suite has."""
    doc = {f: entry[f] for f in ENTRY_FIELDS}
    alg = entry.get("hash_alg")
    if alg is not None:
        doc["hash_alg"] = alg  # covered, so naming another hash breaks the entry
    return ENTRY_HASHES[alg or SHA256](canonical_json(doc)).hex()


# Built once: this runs under the hub's write lock for every batch, refusal and read.
INSERT_ENTRY = insert(tables.receipt_log)
MOVE_HEAD = (
    update(tables.log_head)
    .where(tables.log_head.c.id == 1)
    .values(log_seq=bindparam("h_seq"), log_head=bindparam("h_head"), hub_seq=bindparam("h_hub_seq"),
            signature=bindparam("h_sig"), signed_at=bindparam("h_at"))
)


@dataclass
class Appended:
    seq: int
    entry_hash: str
    time: str


def next_entry(
    head: dict,
    hub_key: PrivateKey,
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
        "hash_alg": hash_alg_for(hub_key),
    }
    h = entry["entry_hash"] = entry_hash(entry)
    sig = b64(suite_of(hub_key).sign(hub_key, head_message(entry["seq"], h)))
    new_hub_seq = head["hub_seq"] if hub_seq is None else hub_seq
    move = {"h_seq": entry["seq"], "h_head": h, "h_hub_seq": new_hub_seq, "h_sig": sig, "h_at": entry["time"]}
    head.update(log_seq=entry["seq"], log_head=h, hub_seq=new_hub_seq, signature=sig)
    return entry, move, Appended(entry["seq"], h, entry["time"])


def append(conn: Connection, head: dict, hub_key: PrivateKey, **fields: Any) -> Appended:
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
    hashes: dict[str, int] = field(default_factory=dict)  # entries per hash_alg ("sha-256", "sm3")

    def __str__(self) -> str:
        if self.ok:
            by_hash = ", ".join(f"{n} {alg}" for alg, n in sorted(self.hashes.items()))
            return (f"receipt log intact: {self.entries} entries, head {self.last_seq} {self.last_hash}"
                    + (f" (chained with {by_hash})" if by_hash else ""))
        return "receipt log BROKEN:\n" + "\n".join(f"  {p}" for p in self.problems)


def _bad(v: LogVerdict, seq: int | None, message: str) -> None:
    v.ok = False
    if seq is not None and (v.first_bad_seq is None or seq < v.first_bad_seq):
        v.first_bad_seq = seq
    v.problems.append(message)


def verify_log(
    engine: Engine,
    heads: Iterable[tuple[int, str]] = (),
    hub_public_key: PublicKey | None = None,
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
    cols = [tables.receipt_log.c[f] for f in (*ENTRY_FIELDS, "entry_hash", "hash_alg")]
    with engine.connect() as conn:
        checkpoint = conn.execute(select(tables.log_head).where(tables.log_head.c.id == 1)).mappings().first()
        checkpoint_seq = int(checkpoint["log_seq"]) if checkpoint is not None else None
        checkpoint_hash: str | None = None
        result = conn.execution_options(yield_per=2000).execute(select(*cols).order_by(tables.receipt_log.c.seq))
        for row in result.mappings():
            seq = int(row["seq"])
            v.entries += 1
            if seq != prev_seq + 1:
                _bad(v, prev_seq + 1, f"entry {prev_seq + 1}" + (f"..{seq - 1}" if seq - 1 > prev_seq + 1 else "")
                     + f" missing: the log jumps from {prev_seq} to {seq} (deleted)")
            elif row["prev_hash"] != prev_hash:
                _bad(v, seq, f"entry {seq}: prev_hash does not match entry {prev_seq} (an entry before it was altered, moved or replaced)")
            alg = row["hash_alg"] or SHA256
            v.hashes[alg] = v.hashes.get(alg, 0) + 1
            if alg not in ENTRY_HASHES:
                _bad(v, seq, f"entry {seq}: hash_alg {alg!r} is no suite's hash (known: {', '.join(ENTRY_HASHES)})")
            elif entry_hash(row) != row["entry_hash"]:
                _bad(v, seq, f"entry {seq}: content does not match its entry_hash ({alg}; altered or moved)")
            if seq in wanted:
                seen[seq] = row["entry_hash"]
            if seq == checkpoint_seq:
                checkpoint_hash = row["entry_hash"]
            prev_seq, prev_hash = seq, row["entry_hash"]
    v.last_seq, v.last_hash = prev_seq, prev_hash
    for s, hs in sorted(wanted.items()):
        for h in hs:
            if s > prev_seq:
                _bad(v, prev_seq + 1, f"truncated: a gateway holds a signed head at entry {s}, the log ends at {prev_seq}")
            elif seen.get(s) != h:
                _bad(v, s, f"entry {s}: differs from the head a gateway holds ({h[:16]}…)")
    _check_checkpoint(v, checkpoint, checkpoint_hash, hub_public_key)
    return v


def _check_checkpoint(
    v: LogVerdict,
    checkpoint: Mapping[str, Any] | None,
    hash_at_checkpoint: str | None,
    hub_public_key: PublicKey | None,
) -> None:
    """The `log_head` row against the log just read. Every append moves it in the same transaction, so on a
    non-empty log it must exist and name the last entry: a missing or zeroed one hides a truncated tail."""
    if checkpoint is None or not checkpoint["log_seq"]:
        if v.entries:
            what = "missing" if checkpoint is None else "at entry 0"
            _bad(
                v,
                None,
                f"the hub's signed head checkpoint (log_head) is {what} but the log has {v.entries} entries "
                f"up to {v.last_seq}: it was deleted or rewound, and a truncated tail cannot be ruled out",
            )
        return
    cs, ch = int(checkpoint["log_seq"]), checkpoint["log_head"]
    if hub_public_key is not None:
        if not verify_head(cs, ch, checkpoint["signature"] or "", hub_public_key):
            _bad(v, None, "the hub's head checkpoint signature does not verify")
    if cs > v.last_seq:
        _bad(v, v.last_seq + 1, f"truncated: the hub's signed head is at entry {cs}, the log ends at {v.last_seq}")
    elif hash_at_checkpoint != ch:
        _bad(v, cs, f"entry {cs}: differs from the hub's signed head checkpoint")
    elif cs < v.last_seq:
        _bad(
            v,
            cs + 1,
            f"entries {cs + 1}..{v.last_seq} lie beyond the hub's signed head checkpoint (entry {cs}): "
            "appended without the hub's key, or the checkpoint was rewound",
        )
