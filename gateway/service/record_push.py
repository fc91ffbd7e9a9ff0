"""Per-record push after a local edit: re-read, map, validate, enqueue and push at once.

The one core behind the three ways a clerk's edit reaches the hub: the local
API (`POST /api/local/push`), `gateway push SOURCE KEY`, and the admin UI's
record form. The answer is either the hub's verified receipt for the record
or the validation errors (Chinese, per field), so the clerk sees the result
of *this* edit before moving on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.logs import log
from gateway.store.tables import fingerprints

LOG = logging.getLogger("gateway.push.record")

# status values of PushOutcome
DELIVERED = "delivered"  # the hub's verified receipt says accepted (or duplicate/stale: already there)
INVALID = "invalid"  # the record failed validation at the gateway; nothing was sent
REJECTED = "rejected"  # the hub rejected it; the receipt carries the reasons
QUEUED = "queued"  # enqueued, but the hub could not be reached now; the push worker will deliver it
NOT_FOUND = "not_found"  # no such source, or no such row in it (and never seen)
FAILED = "failed"  # the source could not be read (database down, file missing); nothing changed


@dataclass
class PushOutcome:
    source: str
    key: str
    status: str
    message: str = ""
    problems: list[dict[str, Any]] = field(default_factory=list)  # gateway validation errors
    receipts: list[dict[str, Any]] = field(default_factory=list)  # one per record sent, from verified receipts
    outbox_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == DELIVERED

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "key": self.key, "status": self.status, "ok": self.ok, "message": self.message,
            "problems": self.problems, "receipts": self.receipts, "outbox_ids": self.outbox_ids,
        }


def _problem_dict(p: Any) -> dict[str, Any]:
    if hasattr(p, "as_dict"):
        return p.as_dict()
    return {"message": str(p)}


def _receipt_dict(r: Any) -> dict[str, Any]:
    return {
        "outbox_id": r.outbox_id, "batch_id": r.batch_id, "record_type": r.record_type, "record_key": r.record_key,
        "seq": r.seq, "status": r.status, "reasons": r.reasons, "hub_seq": r.hub_seq, "hub_time": r.hub_time,
        "log_head": r.log_head,
    }


def _latest_outbox_ids(engine: Engine, source: str, source_key: str) -> list[int]:
    """The latest outbox row of the record(s) this source row maps to (for an unchanged re-push)."""
    with engine.connect() as c:
        heads = c.execute(
            select(fingerprints.c.outbox_id).where(
                fingerprints.c.source == source, fingerprints.c.source_key == source_key
            )
        ).scalars()
        return [int(i) for i in heads if i is not None]


class RecordPusher:
    """Holds one push client (one HTTP session) for many per-record pushes; thread-safe.

    `wake` is called when an edit could not be delivered at once, so the push
    worker keeps retrying it in the background.
    """

    def __init__(self, config: GatewayConfig, engine: Engine, wake: Callable[[], None] | None = None) -> None:
        self.config = config
        self.engine = engine
        self.wake = wake
        self._client: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _push_ids(self, ids: list[int], first: Any = None, backoff: Any = None) -> list[Any]:
        with self._lock:
            return self._push_client().push_ids(ids, first=first, backoff=backoff)

    def _push_client(self) -> Any:
        from gateway.push.client import PushClient

        if self._client is None:
            self._client = PushClient(self.config, self.engine)
            self._client.lock_poll = 0.005  # a clerk waits: look for the lock often (a flock try costs nothing)
        return self._client

    def _sync_and_send(self, source: str, key: str, operator: str) -> tuple[Any, Any, Any]:
        """sync_one claiming its batch in the enqueueing transaction, then its first send, holding the push lock.

        One commit less per edit than enqueue-then-claim. When another pusher
        keeps the lock, the edit is enqueued without claiming (as before) and
        push_ids waits for the lock. Returns (sync result, first Step or None, backoff).
        """
        from gateway.push.batching import claim_in
        from gateway.push.lock import PushBusy, push_lock
        from gateway.sync import sync_one

        with self._lock:
            client = self._push_client()
            claimed: list[Any] = []

            def claim(conn: Any, ids: list[int]) -> None:
                batch = claim_in(conn, self.config.department_code, batch_size=client.batch_size, max_bytes=client.max_bytes, only_ids=ids)
                if batch is not None:
                    claimed.append(batch)

            backoff = client.quick_backoff()
            try:
                with push_lock(self.config.state_path, wait=1.0, poll=client.lock_poll):
                    res = sync_one(self.config, source, key, self.engine, operator=operator, then=claim)
                    return res, (client.attempt(claimed[0], backoff) if claimed else None), backoff
            except PushBusy:
                pass
        return sync_one(self.config, source, key, self.engine, operator=operator), None, backoff

    def push(self, source: str, key: str, operator: str) -> PushOutcome:
        try:
            self.config.source(source)
        except KeyError as e:
            return PushOutcome(source, key, NOT_FOUND, str(e.args[0]))
        try:
            res, first, backoff = self._sync_and_send(source, key, operator)
        except GatewayError as e:
            log(LOG, logging.ERROR, "local edit: source not readable", source=source, key=key, error=str(e))
            return PushOutcome(source, key, FAILED, f"无法读取数据源 {source}：{e}")
        problems = [_problem_dict(p) for p in res.problems]
        ids = [int(i) for i in res.outbox_ids]
        if problems and not ids:
            log(LOG, logging.INFO, "local edit invalid", source=source, key=key, problems=len(problems))
            return PushOutcome(source, key, INVALID, "数据校验未通过，未推送", problems=problems)
        if not ids:
            # Unchanged since the last push: answer with that push's receipt.
            ids = _latest_outbox_ids(self.engine, source, key)
            if not ids:
                return PushOutcome(source, key, NOT_FOUND, f"数据源 {source} 中没有键为 {key} 的记录", problems=problems)
        try:
            results = self._push_ids(ids, first, backoff)
        except GatewayError as e:
            if self.wake is not None:
                self.wake()
            log(LOG, logging.WARNING, "local edit queued; hub not reachable now", source=source, key=key, error=str(e))
            return PushOutcome(source, key, QUEUED, f"已入队，暂时无法送达中心，将自动重试：{e}", problems=problems, outbox_ids=ids)
        receipts = [_receipt_dict(r) for r in results]
        if len(results) < len(ids):
            if self.wake is not None:
                self.wake()
            return PushOutcome(source, key, QUEUED, "已入队，尚未收到中心回执，将自动重试", problems, receipts, ids)
        if all(r.delivered for r in results):
            log(LOG, logging.INFO, "local edit delivered", source=source, key=key, outbox_ids=ids)
            return PushOutcome(source, key, DELIVERED, "中心已签收", problems, receipts, ids)
        return PushOutcome(source, key, REJECTED, "中心拒收，原因见回执", problems, receipts, ids)


def push_record_now(
    config: GatewayConfig, engine: Engine, source: str, key: str, operator: str, pusher: RecordPusher | None = None
) -> PushOutcome:
    """Re-read `key` from `source`, map, validate, enqueue and push it now; the hub's receipt or the errors."""
    if pusher is not None:
        return pusher.push(source, key, operator)
    p = RecordPusher(config, engine)
    try:
        return p.push(source, key, operator)
    finally:
        p.close()
