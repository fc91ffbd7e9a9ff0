"""What a batch sends upward, built once where it is accepted: the accepted records' upward envelopes.

A hub with an [upstream] queues each batch that accepted records (or advanced a seq) as one
`forward_outbox` row holding those envelopes (canonical JSON), in the batch's own transaction. The
envelopes come from the batch already validated and decided in memory, so the forwarder never reads
records back nor builds them again: before, reading each record back and rebuilding its envelope was
most of what forwarding cost (docs/hub.md, "Levels").

Each envelope is the record as the upper hub is to receive it: the same seq and version, this hub's
link appended to its provenance (`chain.link`), the confidential fields withheld unless the upper level
is granted them (`withheld.withhold`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.hub.decide import Candidate, Outcome
from gateway.hub.forward.chain import link, with_link
from gateway.hub.forward.withheld import withhold
from gateway.protocol.batch import make_batch
from gateway.protocol.canonical import canonical_json
from gateway.protocol.merkle import Digest, leaf_data, leaf_hash

_EMPTY = b"[]"


@dataclass(frozen=True)
class UpwardSpec:
    """How this hub's records leave it upward: its receipt key id, its key id above, the upper level's grant."""

    hub_key_id: str
    relay_key: str
    confidential: bool = False
    digest: Digest | None = None  # the upper hub's suite digest: the envelopes' leaf hashes are stored with them


def upward_record(r: dict[str, Any], spec: UpwardSpec, this_link: dict[str, str] | None = None) -> dict[str, Any]:
    """A record row (columns of `tables.records`, JSON values parsed) as the upper hub is to receive it;
    `this_link`: this hub's link for it, when the caller made it once for a whole batch.

    The envelope of `gateway.protocol.batch.make_record`, built from the row without copying its data again."""
    deleted = bool(r["deleted"])
    prov = with_link(r["provenance"], this_link or link(spec.hub_key_id, spec.relay_key, r["batch_id"], r["received_at"]))
    data = None if deleted else r["data"]
    if not spec.confidential:
        data, prov = withhold(r["type"], data, prov)
    return {"type": r["type"], "department": r["department"], "key": r["key"], "op": "delete" if deleted else "upsert",
            "seq": int(r["seq"]), "version": r["version"], "updated_at": r["updated_at"], "provenance": prov, "data": data}


def _bumped(candidates: list[Candidate], out: Outcome, batch_id: str, received_at: str) -> Iterator[dict[str, Any]]:
    """Record rows for the seq advances (a `duplicate` of a higher seq: the same content, so the seq moves
    up above too), from the duplicate that advanced it. Its data is the checked record's (a duplicate is
    decided before its data's problems count, so a record the rules now reject goes up as it came: the
    upper hub decides it a duplicate too)."""
    left = dict(out.bumps)
    for c, res in zip(candidates, out.results, strict=True):
        k = (res["type"], res["key"])
        if res["status"] != "duplicate" or left.get(k) != res["seq"]:
            continue
        del left[k]
        rec, deleted = c.rec, c.rec["op"] == "delete"
        yield {"department": rec["department"], "type": k[0], "key": k[1], "seq": res["seq"],
               "version": rec["version"], "deleted": deleted,
               "data": None if deleted else (c.clean if c.clean is not None else rec.get("data")),
               "updated_at": rec.get("updated_at"), "provenance": rec.get("provenance"),
               "batch_id": batch_id, "received_at": received_at}


def batch_envelopes(candidates: list[Candidate], out: Outcome, spec: UpwardSpec, batch_id: str,
                    received_at: str) -> list[dict[str, Any]]:
    """The upward envelopes of a decided batch: its accepted records' final state per key (in the order
    their keys first appear, so a material goes before the stock naming it), then the seq advances."""
    rows: Iterable[dict[str, Any]] = out.rows.values()
    this_link = link(spec.hub_key_id, spec.relay_key, batch_id, received_at)  # the same for all: made once
    envelopes = [upward_record(r, spec, this_link) for r in rows]
    if out.bumps:
        envelopes.extend(upward_record(r, spec, this_link) for r in _bumped(candidates, out, batch_id, received_at))
    return envelopes


def encode(envelopes: list[dict[str, Any]]) -> bytes:
    """The envelopes as stored in `forward_outbox.body`: canonical JSON, the bytes they are signed in."""
    return canonical_json(envelopes)


def leaf_hashes(envelopes: list[dict[str, Any]], digest: Digest) -> bytes:
    """The envelopes' leaves of a compact receipt's Merkle tree under the upper hub's `digest`, concatenated
    (`gateway.protocol.merkle`): stored with them, so the forwarder checks a receipt that accepted every
    record without parsing the upward body again (that was ~5 µs a record, most of its receipt check)."""
    return b"".join(leaf_hash(digest, leaf_data(e["type"], e["department"], e["key"], e["seq"], e["version"]))
                    for e in envelopes)


def upward_body(department: str, source: str, batch_id: str, parts: list[bytes]) -> bytes:
    """The body of an upward batch carrying the stored envelope arrays `parts` (canonical JSON, in order).

    Exactly `canonical_json(make_batch(...))` of the envelopes, but they enter it as the bytes they were
    stored in (`orjson.Fragment`), not parsed and encoded again: that was most of a claim's CPU (~5 µs a
    record). The arrays are joined element-wise: each is `[e1,e2,...]`, canonical, so `e1,e2,...` between
    its brackets are the elements as the body carries them."""
    batch = make_batch(department, source, [], batch_id=batch_id)
    joined = b"[" + b",".join(p[1:-1] for p in parts if p != _EMPTY) + b"]"
    batch["records"] = orjson.Fragment(joined)
    return canonical_json(batch)
