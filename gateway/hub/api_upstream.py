"""`GET /api/v1/batches/<batch_id>/upstream`: the upper hub's signed receipts for a batch this hub forwarded.

A department asks for a batch of its own; a relay (a lower hub) for a batch of a department of its area,
so a township can fetch, through the county, the city's receipts for what it forwarded. The answer holds
each receipt's exact bytes and signature, checkable with the upper hub's public key alone (docs/hub.md).
"""

from __future__ import annotations

from flask import Response
from sqlalchemy import select

from gateway.hub import tables
from gateway.hub.api import _log_read, api, authenticate, hub, refused
from gateway.hub.app import json_response
from gateway.hub.forward.outbox import upstream_receipts


@api.get("/batches/<batch_id>/upstream")
def get_upstream_receipts(batch_id: str) -> Response:
    h = hub()
    caller = authenticate(b"")
    with h.engine.connect() as conn:
        owner = conn.execute(select(tables.batches.c.department).where(tables.batches.c.batch_id == batch_id)).scalar()
    allowed = owner is not None and (owner == caller.department or (caller.area is not None and owner in caller.area))
    if not allowed:
        # Not told apart from an unknown batch: a department learns nothing of others' batch ids.
        raise refused(404, "not_found", f"无此批次 / no batch {batch_id} of yours", key_id=caller.key_id,
                      department=caller.department or None)
    found = upstream_receipts(h.engine, batch_id, owner)
    queued = None
    if not found:
        with h.engine.connect() as conn:
            queued = conn.execute(select(tables.forward_outbox.c.state)
                                  .where(tables.forward_outbox.c.batch_id == batch_id)).scalar()
    _log_read(h, caller, {"upstream_receipts": batch_id, "count": len(found)})
    return json_response({"batch_id": batch_id, "department": owner, "forwarding": h.forwarding,
                          "queue_state": queued, "upstream": found})
