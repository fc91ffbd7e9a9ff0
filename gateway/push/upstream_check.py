"""Did this department's batches reach the hub one level up? (`gateway receipts verify --upstream-key FILE`)

For each of the latest batches whose township receipt the gateway holds, the township hub is asked for the
upper hub's signed receipts of the upward batches that carried its records
(`GET /api/v1/batches/<id>/upstream`, docs/protocol.md). Each receipt is checked with the upper hub's public
key alone, and every record the township accepted must be in one of them (same type and key, a seq not
lower). A batch whose records all went up with a later batch (superseded there) counts as reached by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from sqlalchemy import Engine, select

from gateway.config import GatewayConfig
from gateway.errors import RetriableError
from gateway.protocol.receipts import ReceiptInvalid, verify_receipt
from gateway.protocol.signing import sign_request
from gateway.store.tables import batch_receipts

UPSTREAM_PATH = "/api/v1/batches/{}/upstream"


@dataclass
class UpstreamVerdict:
    batches: int = 0
    reached: int = 0  # every accepted record is in a verified upper-hub receipt
    superseded: int = 0  # its records went up in their later state, with a later batch
    waiting: int = 0  # queued or sent, no upper receipt yet
    not_forwarded: int = 0  # the hub forwards to no upper hub
    records_reached: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (batch id, reason)

    @property
    def ok(self) -> bool:
        return not self.bad

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "reached": self.reached, "superseded": self.superseded,
                "waiting": self.waiting, "not_forwarded": self.not_forwarded, "records_reached": self.records_reached,
                "bad": [{"batch_id": b, "reason": r} for b, r in self.bad]}


def check_upstream(config: GatewayConfig, engine: Engine, upper_key: Any, last: int = 50) -> UpstreamVerdict:
    from gateway.push.transport import HubTransport  # its session: TLS, CA, client certificate, proxies

    with engine.connect() as conn:
        rows = conn.execute(select(batch_receipts.c.batch_id, batch_receipts.c.body)
                            .order_by(batch_receipts.c.received_at.desc()).limit(last)).all()
    verdict = UpstreamVerdict()
    transport = HubTransport(config)
    try:
        for batch_id, body in rows:
            accepted = {(r["type"], r["key"]): r["seq"] for r in orjson.loads(body)["results"] if r["status"] == "accepted"}
            if not accepted:
                continue
            verdict.batches += 1
            _judge(verdict, batch_id, accepted, _ask(transport, config, batch_id), upper_key, config.department_code)
    finally:
        transport.close()
    return verdict


def _ask(transport: Any, config: GatewayConfig, batch_id: str) -> dict[str, Any]:
    import requests

    url = config.hub.url + UPSTREAM_PATH.format(quote(batch_id, safe=""))
    try:
        headers = sign_request("GET", urlsplit(url).path, b"", transport.key, transport.key_id)
        resp = transport.session.get(url, headers=headers, timeout=transport.timeout, verify=transport.verify)
    except requests.RequestException as e:
        raise RetriableError(f"中心不可达 / cannot ask the hub for upper-hub receipts: {e}") from None
    if resp.status_code != 200:
        raise RetriableError(f"中心答复 {resp.status_code} / hub answered {resp.status_code}: {resp.text[:300]}")
    return orjson.loads(resp.content)


def _judge(verdict: UpstreamVerdict, batch_id: str, accepted: dict[tuple[str, str], int], answer: dict[str, Any],
           upper_key: Any, department: str) -> None:
    if not answer.get("forwarding"):
        verdict.not_forwarded += 1
        return
    ups = answer.get("upstream") or []
    if not ups:
        if answer.get("queue_state") == "superseded":
            verdict.superseded += 1
        else:
            verdict.waiting += 1
        return
    seen: dict[tuple[str, str], int] = {}
    for up in ups:
        if up.get("state") != "delivered":
            verdict.waiting += 1
            return
        try:
            doc = verify_receipt(str(up["receipt"]).encode("utf-8"), str(up["signature"]), upper_key)
        except (ReceiptInvalid, KeyError) as e:
            verdict.bad.append((batch_id, f"上级回执签名无效 / upper-hub receipt does not verify: {e}"))
            return
        if doc.get("batch_id") != up.get("forward_id") or doc.get("department") != department:
            verdict.bad.append((batch_id, "上级回执不是关于该上报批次或本部门 / upper-hub receipt is about another batch"))
            return
        for r in doc.get("results", []):
            if r.get("status") in ("accepted", "duplicate", "stale"):
                k = (r.get("type"), r.get("key"))
                seen[k] = max(seen.get(k, -1), int(r.get("seq") or 0))
    missing = [k for k, seq in accepted.items() if seen.get(k, -1) < seq]
    # A record left out of the upward batch was overwritten before it left: its later state went up instead.
    verdict.records_reached += len(accepted) - len(missing)
    verdict.reached += 1
