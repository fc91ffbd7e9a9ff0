"""GET /healthz: is this hub process able to take batches? For a load balancer or a wait script.

No authentication and no data in the answer: only "ok", or which part is not ready.
"""

from __future__ import annotations

import logging
from typing import Any

from cryptography.exceptions import InvalidSignature
from flask import Blueprint, current_app
from sqlalchemy import select

from gateway.hub.tables import hub_schema_version

LOG = logging.getLogger(__name__)

health = Blueprint("hub_health", __name__)

_PROBE = b"gateway-hub healthz"

REASONS = {
    "database": "中心数据库无法访问 / hub database not answering",
    "signing_key": "回执签名密钥不可用 / receipt signing key not usable",
}


def problem(hub: Any) -> str | None:
    """The first part that is not ready ("database", "signing_key"), or None."""
    try:
        # A trivial query on the hub's own schema: the database answers and is the hub's.
        with hub.engine.connect() as c:
            c.execute(select(hub_schema_version).limit(1)).first()
    except Exception as e:  # noqa: BLE001 (any failure means not ready; the reason stays in the log)
        LOG.warning("healthz: hub database not answering: %s", e)
        return "database"
    try:
        key = hub.key
        key.public_key().verify(key.sign(_PROBE), _PROBE)
    except (AttributeError, InvalidSignature, ValueError) as e:
        LOG.warning("healthz: hub signing key not usable: %s", e)
        return "signing_key"
    return None


@health.get("/healthz")
def healthz() -> Any:
    from gateway.hub.app import json_response

    reason = problem(current_app.extensions["hub"])
    if reason is None:
        return json_response({"status": "ok"})
    return json_response(
        {"status": "unavailable", "reason": reason, "message": REASONS[reason]},
        503,
        {"Retry-After": "5", "Cache-Control": "no-store"},
    )
