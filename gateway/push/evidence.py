"""The department's hold on the hub: its stored receipts checked offline, and the hub's head compared with them.

Every batch receipt the gateway keeps (`batch_receipts`) is the hub's signature over the receipt document,
which carries the hub's receipt-log head (`log_seq`, `log_head`) right after that batch. Checked with the hub's
public key alone, they prove how far the hub's log reached and what it held; what the store says of each
record must be what the signed documents say: a receipts row (a rejection, a duplicate, a stale version) its
signed result, an outbox row delivered without one (accepted: gateway/push/record_receipts.py) an accepted
result for that very version. The latest head held is what the hub's
published head (`GET /api/v1/log/head`) must not fall behind: a hub answering a lower `log_seq` has cut its
log back (`gateway hub verify-log --heads` then names the entries, from the receipts `export_heads` writes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from gateway.config import GatewayConfig
from gateway.errors import RetriableError
from gateway.protocol.receipts import ReceiptInvalid, expanded, is_compact, verify_head, verify_receipt
from gateway.protocol.suites import suite_of
from gateway.push.record_receipts import signed_accepted
from gateway.store import receipts as receipt_store
from gateway.store.receipts import Member
from gateway.store.tables import batch_receipts, receipts

LOG_HEAD_PATH = "/api/v1/log/head"


@dataclass(frozen=True)
class BadReceipt:
    batch_id: str
    record: str | None  # "type/key" of a record's receipt; None for the batch receipt itself
    reason: str


@dataclass(frozen=True)
class SignedHead:
    log_seq: int
    log_head: str
    batch_id: str | None = None  # the batch whose receipt carries it (None: the hub's published head)


@dataclass
class EvidenceVerdict:
    batches_ok: int = 0
    batches_bad: int = 0
    records_ok: int = 0
    records_bad: int = 0
    bad: list[BadReceipt] = field(default_factory=list)
    latest: SignedHead | None = None  # the highest signed head held

    @property
    def ok(self) -> bool:
        return not self.bad

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batch_receipts": {"ok": self.batches_ok, "bad": self.batches_bad},
            "record_receipts": {"ok": self.records_ok, "bad": self.records_bad},
            "latest_head": None if self.latest is None else vars(self.latest),
            "bad": [vars(b) for b in self.bad],
        }


def verify_receipts(
    engine: Engine, hub_public_key: Ed25519PublicKey, department: str, export: BinaryIO | None = None
) -> EvidenceVerdict:
    """Check every stored receipt with the hub's public key alone; `export` gets each verified one as a line
    `{"receipt", "signature"}` (what `gateway hub verify-log --heads` reads).

    Both tables are read in one transaction, in batch id order, and merged: memory stays flat however many.
    """
    v = EvidenceVerdict()
    with engine.connect() as conn:
        # One read snapshot (WAL) for both tables and the fork check while pushes go on: pysqlite itself
        # begins a transaction only before a write. Ended by the connection's rollback on close.
        conn.exec_driver_sql("BEGIN")
        rows = _record_rows(conn)
        row = next(rows, None)
        q = select(batch_receipts).order_by(batch_receipts.c.batch_id)
        for br in conn.execution_options(yield_per=500).execute(q):
            while row is not None and row.batch_id < br.batch_id:  # record rows of a batch with no signed receipt
                _bad(v, row.batch_id, _record(row), "无此批次的签名回执 / no signed receipt of its batch is stored")
                row = next(rows, None)
            mine = []
            while row is not None and row.batch_id == br.batch_id:
                mine.append(row)
                row = next(rows, None)
            batch = receipt_store.members(conn, br.batch_id)
            doc = _check_batch(v, br, hub_public_key, department, batch)
            if doc is None:
                own = {r.outbox_id for r in mine}
                for r in [*mine, *(m for m in batch if m.state == "delivered" and m.id not in own)]:
                    _bad(v, r.batch_id, _record(r), "所属批次回执无效 / its batch receipt is bad")
                continue
            if export is not None:
                export.write(orjson.dumps({"receipt": bytes(br.body).decode("utf-8"), "signature": br.signature}))
                export.write(b"\n")
            if v.latest is None or doc["log_seq"] > v.latest.log_seq:
                v.latest = SignedHead(doc["log_seq"], doc["log_head"], br.batch_id)
            _check_records(v, doc, mine)
            _check_accepted(v, doc, batch, mine)
        while row is not None:
            _bad(v, row.batch_id, _record(row), "无此批次的签名回执 / no signed receipt of its batch is stored")
            row = next(rows, None)
        # Two signed receipts naming one log entry with different heads: the hub forked its log. The stored
        # columns are the signed values here (a batch whose columns differ is reported above).
        c = batch_receipts.c
        forks = select(c.log_seq).group_by(c.log_seq).having(func.count(func.distinct(c.log_head)) > 1)
        for (seq,) in conn.execute(forks):
            for (batch_id,) in conn.execute(select(c.batch_id).where(c.log_seq == seq).order_by(c.batch_id)):
                _bad(
                    v,
                    batch_id,
                    None,
                    f"中心对日志第 {seq} 条签发了不同的日志头 / the hub signed different heads "
                    f"for log entry {seq} (a forked log)",
                    count=False,
                )
    return v


def _record_rows(conn: Connection) -> Iterator[Any]:
    q = select(receipts).order_by(receipts.c.batch_id, receipts.c.id)
    yield from conn.execution_options(yield_per=2000).execute(q)


def _record(row: Any) -> str:
    return f"{row.record_type}/{row.record_key}"


def _bad(v: EvidenceVerdict, batch_id: str, record: str | None, reason: str, count: bool = True) -> None:
    v.bad.append(BadReceipt(batch_id, record, reason))
    if not count:  # a finding about receipts counted already (each verifies on its own)
        return
    if record is None:
        v.batches_bad += 1
    else:
        v.records_bad += 1


def _check_batch(
    v: EvidenceVerdict, br: Any, hub_public_key: Ed25519PublicKey, department: str, batch: list[Member]
) -> dict[str, Any] | None:
    """The signed document of one stored batch receipt, or None (reported) when it is not evidence of that batch."""
    try:
        doc = verify_receipt(bytes(br.body), br.signature, hub_public_key)
    except ReceiptInvalid as e:
        _bad(v, br.batch_id, None, str(e))
        return None
    problems = []
    if doc["batch_id"] != br.batch_id:
        problems.append(f"签名回执属于批次 {doc['batch_id']} / the signed receipt is for batch {doc['batch_id']}")
    if doc["department"] != department:
        problems.append(
            f"签名回执属于部门 {doc['department']} / the signed receipt is for department {doc['department']}"
        )
    if type(doc["log_seq"]) is not int or not isinstance(doc["log_head"], str):
        problems.append("签名回执的日志头格式错误 / the signed receipt's log head is malformed")
    elif (br.log_seq, br.log_head, br.hub_key_id) != (doc["log_seq"], doc["log_head"], doc["hub_key_id"]):
        problems.append(
            "存储的日志头或密钥号与签名回执不符 / stored log_seq, log_head or hub_key_id differ from the signed receipt"
        )
    if not problems and is_compact(doc):
        try:
            doc = _expand(doc, batch, hub_public_key, department)
        except ReceiptInvalid as e:
            problems.append(str(e))
    for p in problems:
        _bad(v, br.batch_id, None, p)
    if problems:
        return None
    v.batches_ok += 1
    return doc


def _expand(doc: dict[str, Any], batch: list[Member], hub_public_key: Any, department: str) -> dict[str, Any]:
    """A compact receipt's per-record results, its Merkle root recomputed from the batch's outbox rows (in
    outbox order, the body's order; each holds the version its leaf hashes)."""
    if not batch:
        raise ReceiptInvalid("紧凑回执所涉记录已不在发件箱，无法复核默克尔根 / the outbox rows a compact receipt covers "
                             "are gone: its merkle_root cannot be recomputed")
    records = [(m.record_type, department, m.record_key, m.seq, m.version) for m in batch]
    return expanded(doc, records, suite_of(hub_public_key).digest)


def _check_accepted(v: EvidenceVerdict, doc: dict[str, Any], batch: list[Member], mine: list[Any]) -> None:
    """Each outbox row delivered in this batch without a receipts row of its own (an accepted record's
    receipt is the batch's): the signed receipt must accept exactly that version."""
    own = {r.outbox_id for r in mine}
    accepted = signed_accepted(doc)  # the document is full here (a compact one was expanded)
    for m in batch:
        if m.state != "delivered" or m.id in own:
            continue
        if (m.record_type, m.record_key, m.seq, m.version) in accepted:
            v.records_ok += 1
        else:
            _bad(v, m.batch_id, _record(m),
                 f"发件箱记为已送达，签名回执未接收此版本（seq {m.seq}）/ delivered in the outbox, but the signed "
                 f"receipt does not accept this version (seq {m.seq})")


def _check_records(v: EvidenceVerdict, doc: dict[str, Any], rows: list[Any]) -> None:
    """Each record's stored receipt against the signed result for it (type, key, seq)."""
    signed: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for r in doc["results"] if isinstance(doc["results"], list) else []:
        if isinstance(r, dict):
            signed.setdefault((r.get("type"), r.get("key"), r.get("seq")), []).append(r)
    for row in rows:
        candidates = signed.get((row.record_type, row.record_key, row.seq))
        if not candidates:
            _bad(
                v,
                row.batch_id,
                _record(row),
                f"签名回执中没有此记录（seq {row.seq}）/ not in the signed receipt (seq {row.seq})",
            )
            continue
        differs = min((_differences(row, doc, r) for r in candidates), key=len)
        if differs:
            _bad(
                v, row.batch_id, _record(row), f"与签名回执不符 / differs from the signed receipt: {', '.join(differs)}"
            )
        else:
            v.records_ok += 1


def _differences(row: Any, doc: dict[str, Any], r: dict[str, Any]) -> list[str]:
    stored_reasons = orjson.loads(row.reasons) if row.reasons else []
    pairs = (
        ("status", row.status, r.get("status")),
        ("hub_seq", row.hub_seq, r.get("hub_seq")),
        ("reasons", stored_reasons, list(r.get("reasons") or [])),
        ("hub_time", row.hub_time, doc.get("hub_time")),
        ("log_head", row.log_head, doc.get("log_head")),
    )
    return [f"{name} {stored!r} ≠ {signed!r}" for name, stored, signed in pairs if stored != signed]


@dataclass(frozen=True)
class HubComparison:
    """The hub's published head against the latest one this gateway holds."""

    hub: SignedHead | None  # None: the hub could not be asked, or answered no signed head (`message` says why)
    hub_key_id: str | None
    ok: bool
    message: str


def compare_hub(config: GatewayConfig, latest: SignedHead | None) -> HubComparison:
    """Fetch the hub's head and compare; a hub that cannot be asked is a failed comparison, not an exception."""
    try:
        head, key_id = fetch_hub_head(config)
    except RetriableError as e:
        return HubComparison(None, None, False, str(e))
    return compare_with_hub(latest, head, key_id)


def fetch_hub_head(config: GatewayConfig) -> tuple[SignedHead, str | None]:
    """GET /api/v1/log/head, signed as any request of this gateway; its head signature checked with the hub key.

    Raises RetriableError when the hub cannot be asked, HeadInvalid when its answer is no signed head.
    """
    from gateway.push.transport import HubTransport  # its session: TLS, CA, client certificate, proxies

    transport = HubTransport(config)
    try:
        resp = transport.signed_get(config.hub.url, LOG_HEAD_PATH, "its log head")
    finally:
        transport.close()
    try:
        doc = orjson.loads(resp.content)
        seq, head, sig = int(doc["log_seq"]), str(doc["log_head"]), doc.get("signature")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise HeadInvalid(f"中心日志头答复格式错误 / malformed log head answer: {resp.text[:300]}") from None
    if seq and not verify_head(seq, head, sig or "", transport.hub_public_key):
        raise HeadInvalid(f"中心日志头签名无效 / the hub's head at entry {seq} does not verify with the hub key")
    return SignedHead(seq, head), doc.get("hub_key_id")


class HeadInvalid(RetriableError):
    """The hub's answer to GET /api/v1/log/head is not a head signed by the configured hub key."""


def compare_with_hub(latest: SignedHead | None, hub: SignedHead, hub_key_id: str | None = None) -> HubComparison:
    """Consistent when the hub's head is at or beyond the latest one held (the same head at the same entry)."""
    if latest is None:
        msg = f"本部门未持有签名日志头，无从比较 / no signed head held, nothing to compare (hub at {hub.log_seq})"
        return HubComparison(hub, hub_key_id, True, msg)
    if hub.log_seq < latest.log_seq:
        msg = (
            f"截断 / TRUNCATED: 中心当前日志头在第 {hub.log_seq} 条，本部门持有第 {latest.log_seq} 条的签名日志头"
            f"（批次 {latest.batch_id}）/ the hub reports its log at entry {hub.log_seq}, but signed a head at "
            f"entry {latest.log_seq} for batch {latest.batch_id}: its receipt log was cut back"
        )
        return HubComparison(hub, hub_key_id, False, msg)
    if hub.log_seq == latest.log_seq and hub.log_head != latest.log_head:
        msg = (
            f"不一致 / INCONSISTENT: 中心第 {hub.log_seq} 条的日志头与其为本部门签发的不同 / the hub's head at entry "
            f"{hub.log_seq} differs from the one it signed for batch {latest.batch_id}: its log was rewritten"
        )
        return HubComparison(hub, hub_key_id, False, msg)
    msg = (
        f"一致 / consistent: 中心日志头第 {hub.log_seq} 条不早于本部门持有的第 {latest.log_seq} 条 / "
        f"the hub's head ({hub.log_seq}) is not behind the latest one held ({latest.log_seq})"
    )
    return HubComparison(hub, hub_key_id, True, msg)


@contextmanager
def exporting(path: Path) -> Iterator[BinaryIO]:
    """A file for `verify_receipts(export=...)`: written beside `path` and renamed over it only when complete."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
