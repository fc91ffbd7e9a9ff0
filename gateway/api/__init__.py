"""The gateway's local API: department systems push one record right after editing it.

    POST /api/local/push   {"source": "...", "key": "...", "operator": "张三"}
        Authorization: Bearer <web.api_token>
    GET  /healthz          scheduler, state store and hub reachability

Attach to any Flask app (the admin UI's, or a bare one) with ``attach_api``.
"""

from gateway.api.local import LocalAPI, attach_api

__all__ = ["LocalAPI", "attach_api"]
