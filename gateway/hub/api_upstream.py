"""`GET /api/v1/batches/<batch_id>/upstream`: the upper hub's signed receipts for a batch this hub forwarded.

A department asks for a batch of its own; a relay (a lower hub) for a batch of a department of its area,
so a township can fetch, through the county, the city's receipts for what it forwarded. With `?levels=N`
(1–5, default 1) the hub asks its own upper hub for each delivered upward batch's receipts, N-1 levels
further up, and nests each answer under `above` (or the reason it could not, under `above_error`). The answer holds
each receipt's exact bytes and signature, checkable with the upper hub's public key alone (docs/hub.md).
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
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
    levels = request.args.get("levels", default=1, type=int) or 1
    if not 1 <= levels <= MAX_LEVELS:
        raise refused(400, "malformed_request", f"levels: 须为 1-{MAX_LEVELS} / levels must be 1-{MAX_LEVELS}",
                      key_id=caller.key_id, department=caller.department or None)
    if levels > 1 and h.config.upstream is not None:
        _ask_above(h, found, levels - 1)
    _log_read(h, caller, {"upstream_receipts": batch_id, "count": len(found), "levels": levels})
    return json_response({"batch_id": batch_id, "department": owner, "forwarding": h.forwarding,
                          "queue_state": queued, "upstream": found})


MAX_LEVELS = 5


def _ask_above(h: Any, found: list[dict[str, Any]], levels: int) -> None:
    """Each delivered upward batch's receipts one more level up, asked of the upper hub as its relay."""
    from gateway.hub.forward.upstream import Upstream
    from gateway.protocol.keys import read_private_key

    up = h.config.upstream
    client = Upstream(up.url, read_private_key(up.signing_key), up.key_id, up.hub_key, up.timeout)
    for item in found:
        if item["state"] != "delivered":
            continue
        status, doc = client.get_json(f"/api/v1/batches/{item['forward_id']}/upstream?levels={levels}")
        if status == 200 and isinstance(doc, dict):
            item["above"] = doc
        else:
            item["above_error"] = f"HTTP {status}: {doc}" if status else str(doc)
