"""A signed workbook from a lower level (update path 1 the other way round: a township without a
connection mails the county the workbook its hub exported, `gateway-hub workbook export`).

Refused whole, with nothing stored, when the detached signature does not verify with the key the
operator names, when that key is not a lower hub registered here ([[relays]]), or when the workbook's
department is not in that relay's area. Otherwise every row is read with the standard's template
reader (gateway.workbook.read) and validated; the valid rows are stored as one batch of that
department, received from the relay — the rules of a forwarded batch (accepted / duplicate / stale,
references, receipt, log entry, forwarded further up) — and each bad row is named in the report
(sheet, row, field label, rule, reason in Chinese) without holding back the others.

Sequence numbers: a workbook carries none, so each record takes the signing time (Unix seconds) of
its workbook: a later-signed workbook supersedes an earlier one, the same workbook imported again is
a duplicate (its batch id is its digest: the first receipt is answered), an older one is stale.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.errors import FatalError, SourceError
from gateway.hub import registry, tables
from gateway.hub.forward.chain import check_chain, link, with_link
from gateway.hub.ingest import check_records, store_batch
from gateway.protocol.batch import PROTOCOL_VERSION, Batch, make_record
from gateway.protocol.canonical import record_version
from gateway.protocol.keys import public_key_from_text, public_key_text
from gateway.safe_cells import csv_writer
from gateway.standard.schema import RECORD_TYPES, record_key
from gateway.workbook.read import ERROR_COLUMNS, ImportedRecord, RowError, iter_workbook
from gateway.workbook.signature import WorkbookSignatureError, verify_workbook

TYPE_ORDER = {t: i for i, t in enumerate(RECORD_TYPES)}  # materials and depots before the stock naming them


class WorkbookRefused(FatalError):
    """The workbook is refused whole (nothing stored); the message says why in Chinese and English."""


def fingerprint(public_key_line: str) -> str:
    """A short, stable name for a public key: SHA-256 of its key line, first 16 bytes in hex pairs."""
    digest = hashlib.sha256(public_key_text(public_key_from_text(public_key_line)).encode("ascii")).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


@dataclass
class WorkbookImport:
    """What became of a workbook: who sent it, the stored batch's counts and receipt, every bad row."""

    file: str
    relay_key: str
    relay_name: str
    fingerprint: str
    department: str
    batch_id: str
    counts: dict[str, int] = field(default_factory=dict)  # accepted, duplicate, stale, rejected
    errors: list[RowError] = field(default_factory=list)  # the reader's and the hub's, by sheet and row
    replayed: bool = False  # imported before: the first receipt is answered
    receipt: bytes = b""
    signature: str = ""

    @property
    def provenance_text(self) -> str:
        return f"spreadsheet from {self.relay_name}, signed by {self.fingerprint}"

    def summary(self) -> dict[str, Any]:
        return {"file": self.file, "relay_key": self.relay_key, "relay": self.relay_name,
                "fingerprint": self.fingerprint, "department": self.department, "batch_id": self.batch_id,
                "replayed": self.replayed, "counts": self.counts, "error_count": len(self.errors),
                "errors": [e.as_dict() for e in self.errors]}


def _relay_of(conn: Any, key_line: str) -> registry.KeyEntry:
    """The active relay registered with this public key, or WorkbookRefused."""
    wanted = public_key_text(public_key_from_text(key_line))
    for r in registry.list_relays(conn):
        if public_key_text(public_key_from_text(r.public_key)) == wanted:
            if r.revoked:
                raise WorkbookRefused(f"签名公钥属于已吊销的下级中心 {r.key_id} / the signing key (relay {r.key_id}) is revoked")
            return r
    raise WorkbookRefused("签名公钥不是本中心登记的下级中心（[[relays]] 或 relay add）/ the signing key is not a lower hub "
                          "registered here")


def _relay_name(conn: Any, key_id: str) -> str:
    return conn.execute(select(tables.relays.c.name).where(tables.relays.c.key_id == key_id)).scalar_one()


def import_signed_workbook(hub: Any, workbook: Path, signature: Path, from_key: str, *,
                           file_name: str | None = None) -> WorkbookImport:
    """Verify, read, validate and store one signed workbook at `hub` (a gateway.hub.app.Hub)."""
    try:
        public_key_from_text(from_key)
    except Exception:
        raise WorkbookRefused("所给公钥无法识别（应为 .pub 文件中的一行）/ --from-key is not a public key line") from None
    try:
        manifest = verify_workbook(workbook, from_key, signature).manifest
    except WorkbookSignatureError as e:
        raise WorkbookRefused(f"签名核验未通过，工作簿未导入 / refused: {e}") from None
    dept = manifest.get("department")
    with hub.engine.connect() as conn:
        relay = _relay_of(conn, from_key)
        name = _relay_name(conn, relay.key_id)
        department = registry.department(conn, dept) if isinstance(dept, str) else None
    if department is None:
        raise WorkbookRefused(f"签名清单中的部门 {dept!r} 不是本中心登记的部门 / department {dept!r} is not registered here")
    if dept not in (relay.area or ()):
        raise WorkbookRefused(f"部门 {dept} 不在下级中心 {name}（{relay.key_id}）的辖区内 / department {dept} is outside "
                              f"relay {relay.key_id}'s area ({', '.join(relay.area or ())})")
    digest = str((manifest.get("digest") or {}).get("value", ""))
    batch_id = "wb-" + base64.b64decode(digest).hex()[:33]  # 36 characters, as every batch id column holds
    result = WorkbookImport(file_name or workbook.name, relay.key_id, name, fingerprint(from_key), dept, batch_id)
    try:
        rows = list(iter_workbook(workbook, context=hub.context))
    except SourceError as e:
        raise WorkbookRefused(f"工作簿无法读取，未导入 / unreadable workbook: {e}") from None
    good: list[ImportedRecord] = []
    for x in rows:
        if isinstance(x, RowError):
            result.errors.append(x)
        elif x.record_type not in department.record_types:
            result.errors.append(RowError(x.sheet, x.row, "", "", x.record_type, "record_type_not_allowed",
                                          f"部门 {dept} 无权报送“{RECORD_TYPES[x.record_type].label}”，该行未导入"))
        else:
            good.append(x)
    good.sort(key=lambda r: TYPE_ORDER[r.record_type])
    signed_at = str(manifest.get("signed_at") or "")
    seq = _seq_of(signed_at)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # The chain's link names the lower hub's key that signed the workbook and how it came (a spreadsheet).
    hop = {**link(str(manifest.get("key_id") or relay.key_id), relay.key_id, batch_id, signed_at or now),
           "via": "spreadsheet", "signed_by": result.fingerprint}
    records = [
        make_record(r.record_type, dept, record_key(r.record_type, r.data), "upsert", seq, record_version(r.data), r.data,
                    provenance=with_link({"source": result.provenance_text, "source_key": f"{r.sheet}!{r.row}"}, hop))
        for r in good
    ]
    if not records:  # nothing valid to store: the report alone
        result.counts = {"accepted": 0, "duplicate": 0, "stale": 0, "rejected": 0}
        return result
    batch = Batch(PROTOCOL_VERSION, batch_id, dept, f"workbook:{result.file}", signed_at or now, records)
    candidates = check_records(records, hub.context, from_relay=True)
    check_chain(candidates, relay.key_id)
    with hub.engine.connect() as conn:
        stored = store_batch(conn, hub.key, hub.key_id, batch, candidates, key_id=relay.key_id, digest=digest,
                             forward=hub.upward)
    if stored.conflict:
        raise WorkbookRefused(f"批次号 {batch_id} 已用于其他内容 / {stored.conflict}")
    result.replayed, result.receipt, result.signature = stored.replayed, stored.receipt, stored.signature
    doc = json.loads(stored.receipt)  # this hub's own receipt, just signed (or the first one, stored)
    where = {(r.record_type, record_key(r.record_type, r.data)): r for r in good}
    counts = {"accepted": 0, "duplicate": 0, "stale": 0, "rejected": 0}
    for res in doc["results"]:
        counts[res["status"]] = counts.get(res["status"], 0) + 1
        row = where.get((res["type"], res["key"]))
        if res["status"] == "rejected" and row is not None:
            for why in res.get("reasons") or ():
                result.errors.append(RowError(row.sheet, row.row, why.get("field") or "", why.get("label") or "",
                                              why.get("value"), why.get("rule") or "", why.get("message") or ""))
    result.counts = counts
    sheets = {e.sheet: i for i, e in reversed(list(enumerate(result.errors)))}  # in the order they were read
    result.errors.sort(key=lambda e: (sheets[e.sheet], e.row))
    if hub.forwarding and not stored.replayed:
        hub.wake_forwarder(stored.queued)
    return result


def _seq_of(signed_at: str) -> int:
    """The records' seq: the workbook's signing time in Unix seconds (1 when the manifest has none)."""
    try:
        return max(1, int(dt.datetime.fromisoformat(signed_at).timestamp()))
    except ValueError:
        return 1


def write_error_report(errors: list[RowError], out: Path) -> None:
    """The row-level error report as CSV (UTF-8 with BOM, opens in Excel): sheet, row, field label, rule, reason."""
    with open(out, "w", encoding="utf-8-sig", newline="") as f:
        w = csv_writer(f)
        w.writerow(ERROR_COLUMNS)
        w.writerows(e.report_row() for e in errors)
