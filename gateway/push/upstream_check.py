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
from urllib.parse import quote

import orjson
from sqlalchemy import Engine, select

from gateway.config import GatewayConfig
from gateway.protocol.receipts import ReceiptInvalid, expanded, is_compact, verify_receipt
from gateway.protocol.suites import suite_of
from gateway.push import record_receipts
from gateway.store.tables import batch_receipts

UPSTREAM_PATH = "/api/v1/batches/{}/upstream"


@dataclass
class UpstreamVerdict:
    """One level above the department's hub (level 1: its upper hub, level 2: the one above that ...)."""

    level: int = 1
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
        return {"level": self.level, "batches": self.batches, "reached": self.reached, "superseded": self.superseded,
                "waiting": self.waiting, "not_forwarded": self.not_forwarded, "records_reached": self.records_reached,
                "bad": [{"batch_id": b, "reason": r} for b, r in self.bad]}


def check_upstream(config: GatewayConfig, engine: Engine, upper_keys: list[Any], last: int = 50) -> list[UpstreamVerdict]:
    """One verdict per key given (the upper hubs' public keys, lowest level first)."""
    from gateway.push.transport import HubTransport  # its session: TLS, CA, client certificate, proxies

    with engine.connect() as conn:
        rows = conn.execute(select(batch_receipts.c.batch_id, batch_receipts.c.body)
                            .order_by(batch_receipts.c.received_at.desc()).limit(last)).all()
    verdicts = [UpstreamVerdict(level=i + 1) for i in range(len(upper_keys))]
    transport = HubTransport(config)
    try:
        for batch_id, body in rows:
            accepted = _accepted(conn_engine=engine, batch_id=batch_id, doc=orjson.loads(body))
            if not accepted:
                continue
            verdicts[0].batches += 1
            answer = _ask(transport, config, batch_id, len(upper_keys))
            _judge(verdicts, 0, batch_id, accepted, answer, upper_keys, config.department_code)
    finally:
        transport.close()
    return verdicts


def _accepted(conn_engine: Engine, batch_id: str, doc: dict[str, Any]) -> dict[tuple[str, str], int]:
    """The records the department's hub accepted of a batch: from its receipt, or, for a compact receipt (which
    does not list them), from the batch's records as the gateway stored it (gateway/push/record_receipts.py)."""
    if not is_compact(doc):
        return {(r["type"], r["key"]): r["seq"] for r in doc["results"] if r["status"] == "accepted"}
    with conn_engine.connect() as conn:
        return {(r.record_type, r.record_key): r.seq for r in record_receipts.of_batch(conn, batch_id) if r.status == "accepted"}


def _ask(transport: Any, config: GatewayConfig, batch_id: str, levels: int) -> dict[str, Any]:
    target = UPSTREAM_PATH.format(quote(batch_id, safe="")) + f"?levels={levels}"
    return orjson.loads(transport.signed_get(config.hub.url, target, "upper-hub receipts").content)


def _judge(verdicts: list[UpstreamVerdict], depth: int, batch_id: str, accepted: dict[tuple[str, str], int],
           answer: dict[str, Any], upper_keys: list[Any], department: str) -> None:
    verdict = verdicts[depth]
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
    docs = []
    for up in ups:
        if up.get("state") != "delivered":
            verdict.waiting += 1
            return
        try:
            doc = verify_receipt(str(up["receipt"]).encode("utf-8"), str(up["signature"]), upper_keys[depth])
            if is_compact(doc):  # its root recomputed from the upward batch's records the lower hub lists
                records = [tuple(x) for x in up.get("records") or []]
                doc = expanded(doc, records, suite_of(upper_keys[depth]).digest)  # type: ignore[arg-type]
        except (ReceiptInvalid, KeyError, TypeError, ValueError) as e:
            verdict.bad.append((batch_id, f"第 {depth + 1} 级上级回执签名无效 / upper-hub receipt does not verify: {e}"))
            return
        if doc.get("batch_id") != up.get("forward_id") or doc.get("department") != department:
            verdict.bad.append((batch_id, "上级回执不是关于该上报批次或本部门 / upper-hub receipt is about another batch"))
            return
        docs.append((up, doc))
        for r in doc.get("results", []):
            if r.get("status") in ("accepted", "duplicate", "stale"):
                k = (r.get("type"), r.get("key"))
                seen[k] = max(seen.get(k, -1), int(r.get("seq") or 0))
    # A record left out of the upward batch was overwritten before it left: its later state went up instead.
    verdict.records_reached += sum(seen.get(k, -1) >= seq for k, seq in accepted.items())
    verdict.reached += 1
    if depth + 1 >= len(upper_keys):
        return
    for up, doc in docs:  # the level above, for what this upper hub accepted of it
        acc = {(r["type"], r["key"]): r["seq"] for r in doc.get("results", []) if r.get("status") == "accepted"}
        if not acc:
            continue
        verdicts[depth + 1].batches += 1
        above = up.get("above")
        if not isinstance(above, dict):
            verdicts[depth + 1].bad.append((up["forward_id"], f"上一级未答复 / no answer from the level above: "
                                                              f"{up.get('above_error', 'not asked')}"))
            continue
        _judge(verdicts, depth + 1, up["forward_id"], acc, above, upper_keys, department)
