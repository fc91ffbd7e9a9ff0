"""The hub's decision rules for a batch: pure, no SQL, the same for every store.

Given the checked records of a batch (`Candidate`, from `gateway.hub.ingest.check_records`) and what the
store holds for the keys they name (`Stored`: per (type, key) its seq, version and deleted flag, the
attachments held, the stored 储备方式 of materials), `decide_batch` decides every record in batch order,
accepted / duplicate / stale / rejected (with reasons), and gathers the resulting writes (`Outcome`):
the final row per accepted key, the seq-only advances of duplicates, the receipt results and counts.
The store (`gateway.hub.store`) reads `Stored` for what `wanted` names and writes the `Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.protocol.batch import MAX_SEQ
from gateway.protocol.canonical import canonical_json
from gateway.protocol.receipts import STATUSES
from gateway.standard.schema import FILE_REF, RECORD_TYPES

# Cross-record rules: (record type, field, referenced type, rule id, message template).
REFERENCES = (
    ("stock", "material_id", "material", "material_exists", "物资编码“{v}”不存在：须先报送该物资的基础信息"),
    ("stock", "depot_id", "depot", "depot_exists", "储备库编码“{v}”不存在：须先报送该储备库信息"),
    ("capacity", "agreement_no", "agreement", "agreement_exists", "关联协议编号“{v}”不存在：须先报送该协议信息"),
)
ENVELOPE_LABELS = {
    "type": "记录类型",
    "department": "部门",
    "key": "记录键",
    "op": "操作",
    "seq": "序号",
    "version": "版本",
    "updated_at": "更新时间",
    "provenance": "来源",
    "data": "数据",
}
FILE_FIELDS = {t: tuple(f.name for f in rt.fields if f.kind == FILE_REF) for t, rt in RECORD_TYPES.items()}

State = tuple[int, str, bool]  # a key's stored (seq, version, deleted)
Key = tuple[str, str]  # (type, key)


def reason(fld: str, label: str, value: object, rule: str, message: str) -> dict[str, Any]:
    return {"field": fld, "label": label, "value": value, "rule": rule, "message": message}


@dataclass
class Candidate:
    rec: dict[str, Any]
    clean: dict[str, Any] | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    envelope_ok: bool = True


@dataclass
class Wanted:
    """What a batch needs read from the store, gathered from its candidates."""

    keys_by_type: dict[str, set[str]]  # own keys and referenced keys, by type
    hashes: set[str]  # attachments referenced
    no_depot: set[str]  # materials of stock records without a depot: their 储备方式 is needed
    may_accept: int  # candidates that can still be accepted (envelope and data valid)


@dataclass
class Stored:
    """What the store holds for a batch's `Wanted`, read under the department's lock."""

    state: dict[Key, State] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # attachment hashes held
    modes: dict[str, str] = field(default_factory=dict)  # 储备方式 of stored, not deleted materials


@dataclass
class Outcome:
    results: list[dict[str, Any]] = field(default_factory=list)  # receipt results, in batch order
    rows: dict[Key, dict[str, Any]] = field(default_factory=dict)  # final accepted state per key
    bumps: dict[Key, int] = field(default_factory=dict)  # seq-only advances of keys not in `rows`
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    # In batch order, one per accepted record: its row (the last state of its key wins) and its result,
    # the two places its hub_seq goes (`assign_hub_seqs`).
    accepted: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    new_keys: set[Key] = field(default_factory=set)  # keys of `rows` the store did not hold before the batch


def wanted(candidates: list[Candidate]) -> Wanted:
    keys_by_type: dict[str, set[str]] = {}
    hashes: set[str] = set()
    may_accept = 0
    for c in candidates:
        if not c.envelope_ok:
            continue
        keys_by_type.setdefault(c.rec["type"], set()).add(c.rec["key"])
        if not c.reasons:
            may_accept += 1
        if c.clean is None:
            continue
        for typ, fld, ref_type, _, _ in REFERENCES:
            if c.rec["type"] == typ and c.clean.get(fld):
                keys_by_type.setdefault(ref_type, set()).add(str(c.clean[fld]))
        for fld in FILE_FIELDS[c.rec["type"]]:
            ref = c.clean.get(fld)
            if isinstance(ref, dict) and ref.get("sha256"):
                hashes.add(str(ref["sha256"]))
    # Stock without a depot is allowed only for materials not held physically (储备方式 ≠ 1 实物储备).
    no_depot = {
        str(c.clean["material_id"])
        for c in candidates
        if c.envelope_ok
        and c.clean
        and c.rec["type"] == "stock"
        and c.rec["op"] == "upsert"
        and c.clean.get("material_id")
        and not c.clean.get("depot_id")
    }
    return Wanted(keys_by_type, hashes, no_depot, may_accept)


def batch_modes(candidates: list[Candidate], stored: dict[str, str]) -> dict[str, str]:
    """储备方式 by material: the stored ones, overridden by any material of this batch that carries one.

    As before the split, a material of the batch counts whatever its own status (a stale or rejected
    material's 储备方式 still decides its stock). Only materials in `Wanted.no_depot` are ever looked up.
    """
    modes = dict(stored)
    for c in candidates:
        if c.clean and c.rec["type"] == "material" and c.clean.get("reserve_mode"):
            modes[c.rec["key"]] = str(c.clean["reserve_mode"])
    return modes


def decide_batch(candidates: list[Candidate], stored: Stored, dept: str, batch_id: str, now: str) -> Outcome:
    """Decide every record in batch order against the stored state and the batch's earlier records.

    `stored` is not changed. The accepted records' hub_seq is filled in afterwards (`assign_hub_seqs`).
    """
    out = Outcome()
    state = dict(stored.state)
    modes = batch_modes(candidates, stored.modes)
    rows, counts, results, accepted = out.rows, out.counts, out.results, out.accepted
    bumps: dict[Key, int] = {}
    for c in candidates:
        rec = c.rec
        status, reasons = decide_record(c, state, stored.held, modes)
        if c.envelope_ok:  # the envelope's types are known good: no checks by type per field
            k = (rec["type"], rec["key"])
            result = {
                "key": k[1],
                "type": k[0],
                "seq": rec["seq"],
                "version": rec["version"],
                "status": status,
                "hub_seq": None,
                "reasons": reasons,
            }
        else:
            result = {
                "key": rec.get("key") if isinstance(rec.get("key"), str) else "",
                "type": rec.get("type") if isinstance(rec.get("type"), str) else "",
                "seq": rec["seq"] if valid_seq(rec.get("seq")) else None,
                "version": rec.get("version") if isinstance(rec.get("version"), str) else None,
                "status": status,
                "hub_seq": None,
                "reasons": reasons,
            }
        if status == "accepted":
            deleted = rec["op"] == "delete"
            state[k] = (rec["seq"], rec["version"], deleted)
            row = rows[k] = {
                "department": dept,
                "type": k[0],
                "key": k[1],
                "seq": rec["seq"],
                "version": rec["version"],
                "data": None if deleted else c.clean,
                "updated_at": rec.get("updated_at"),
                "deleted": deleted,
                "provenance": rec.get("provenance"),
                "hub_seq": None,
                "batch_id": batch_id,
                "received_at": now,
            }
            accepted.append((row, result))
        elif status == "duplicate" and state[k][0] < rec["seq"]:
            # Same content under a newer seq: keep the newer seq, so an older state arriving later is stale.
            state[k] = (rec["seq"], *state[k][1:])
            if k in rows:
                rows[k]["seq"] = rec["seq"]
            else:
                bumps[k] = rec["seq"]
        counts[status] += 1
        results.append(result)
    out.bumps = {k: s for k, s in bumps.items() if k not in rows}
    out.new_keys = {k for k in rows if k not in stored.state}
    return out


def assign_hub_seqs(out: Outcome, seqs: list[int]) -> None:
    """Give the accepted records, in batch order, the hub_seq values the store drew (increasing)."""
    for (row, result), s in zip(out.accepted, seqs, strict=True):
        row["hub_seq"] = result["hub_seq"] = s


def receipt_rows(batch_id: str, dept: str, results: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """The per-record receipt rows (columns of `tables.receipts`) of a batch's results."""
    # Cut what a rejected record may carry to a size an index entry can hold.
    return [
        {
            "batch_id": batch_id,
            "department": dept,
            "type": r["type"][:64],
            "key": r["key"][:512],
            "seq": r["seq"],
            "status": r["status"],
            "reasons": canonical_json(r["reasons"]).decode("utf-8") if r["reasons"] else None,
            "hub_time": now,
        }
        for r in results
    ]


def valid_seq(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEQ


def decide_record(c: Candidate, state: dict[Key, State], held: set[str], modes: dict[str, str]) -> tuple[str, list]:
    """Status and reasons of one record against the state so far (stored plus earlier in this batch)."""
    if not c.envelope_ok:
        return "rejected", c.reasons
    rec = c.rec
    typ, key, seq, version = rec["type"], rec["key"], rec["seq"], rec["version"]
    stored = state.get((typ, key))
    if stored is not None:
        s_seq, s_version, s_deleted = stored
        if seq < s_seq:
            return "stale", []
        if seq == s_seq:
            if version == s_version:
                return "duplicate", []
            return "rejected", [
                reason(
                    "seq",
                    ENVELOPE_LABELS["seq"],
                    seq,
                    "seq_conflict",
                    f"序号 {seq} 已用于另一版本的该记录；同一序号不能对应不同内容",
                )
            ]
        if version == s_version and s_deleted == (rec["op"] == "delete"):
            return "duplicate", []
    if c.reasons:
        return "rejected", c.reasons
    if rec["op"] == "delete":
        return "accepted", []
    reasons = []
    for r_type, fld, ref_type, rule, template in REFERENCES:
        v = c.clean.get(fld) if c.clean else None
        if r_type == typ and v:
            ref = state.get((ref_type, str(v)))
            if ref is None or ref[2]:
                label = RECORD_TYPES[typ][fld].label
                reasons.append(reason(fld, label, v, rule, template.format(v=v)))
    for fld in FILE_FIELDS[typ]:
        ref = c.clean.get(fld) if c.clean else None
        if isinstance(ref, dict) and ref.get("sha256") and ref["sha256"] not in held:
            label = RECORD_TYPES[typ][fld].label
            reasons.append(
                reason(
                    fld,
                    label,
                    ref["sha256"],
                    "attachment_exists",
                    f"{label}“{ref.get('name') or ref['sha256'][:12]}”未上传：须先上传附件",
                )
            )
    if typ == "stock" and c.clean and not c.clean.get("depot_id") and modes.get(str(c.clean.get("material_id"))) == "1":
        reasons.append(
            reason(
                "depot_id",
                RECORD_TYPES["stock"]["depot_id"].label,
                None,
                "depot_required",
                f"物资“{c.clean['material_id']}”为实物储备，须填写储备库编码",
            )
        )
    if reasons:
        return "rejected", reasons
    return "accepted", []
