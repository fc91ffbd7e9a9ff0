"""The chain of hubs in a forwarded record's provenance, and its check where the record arrives.

Each forwarding hub appends one link to `provenance.hubs` of every record it sends up:
`{"hub": <its receipt key id>, "relay_key": <its key id at the upper hub>, "batch_id": <the batch it
accepted the record in>, "received_at": <when>}`. The last link is vouched for by the request's signature
(its `relay_key` must be the signing relay key); a department's gateway may send no chain at all. Every
level stores the chain as it arrived, so the city sees the department, the township and the county.
"""

from __future__ import annotations

from typing import Any

from gateway.hub.decide import ENVELOPE_LABELS, Candidate, reason

HUBS = "hubs"


def link(hub_key_id: str, relay_key: str, batch_id: str, received_at: str) -> dict[str, str]:
    return {"hub": hub_key_id, "relay_key": relay_key, "batch_id": batch_id, "received_at": received_at}


def with_link(provenance: dict[str, Any] | None, new_link: dict[str, str]) -> dict[str, Any]:
    prov = dict(provenance or {})
    prov[HUBS] = [*(prov.get(HUBS) or []), new_link]
    return prov


def chain_of(provenance: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The hubs a stored record passed through, lowest first (empty for a record from a gateway)."""
    hubs = (provenance or {}).get(HUBS)
    return [h for h in hubs if isinstance(h, dict)] if isinstance(hubs, list) else []


def check_chain(candidates: list[Candidate], relay_key: str | None) -> None:
    """Reject a record whose chain the request cannot vouch for: any chain from a gateway (`relay_key`
    None), and from a relay a chain whose last link is not that relay's."""
    for c in candidates:
        if not c.envelope_ok:
            continue
        prov = c.rec.get("provenance") or {}
        hubs = prov.get(HUBS)
        if relay_key is None:
            if hubs is not None:
                c.reasons.append(reason("provenance", ENVELOPE_LABELS["provenance"], None, "provenance_hubs",
                                        "部门网关报送的记录不能带有中心转发链（provenance.hubs）"))
            continue
        last = hubs[-1] if isinstance(hubs, list) and hubs else None
        if not isinstance(last, dict) or last.get("relay_key") != relay_key:
            c.reasons.append(reason("provenance", ENVELOPE_LABELS["provenance"], None, "provenance_hubs",
                                    f"转发记录的中心链最后一环须为转发方 {relay_key}（provenance.hubs）"))
