"""The standard's confidential fields (phone numbers, `confidential=True` in gateway/standard/schema.py)
leave a hub upward only when the upper level is granted them (`[upstream] confidential = true`).

A record sent without them names them in `provenance.withheld`; its `version` stays the department's
(the digest of the full record), so receipts still match across levels. The upper hub accepts a
withheld field as absent only from a relay and only for confidential fields; everything else about
the record is validated as usual (a stand-in value takes the withheld field's place while it is
checked, and is removed again)."""

from __future__ import annotations

from typing import Any

from gateway.hub.decide import ENVELOPE_LABELS, Candidate, reason
from gateway.standard.schema import PHONE, RECORD_TYPES

WITHHELD = "withheld"
CONFIDENTIAL: dict[str, frozenset[str]] = {
    t: frozenset(f.name for f in rt.fields if f.confidential) for t, rt in RECORD_TYPES.items()
}
_IN_ORDER = {t: tuple(sorted(names)) for t, names in CONFIDENTIAL.items() if names}  # per envelope: no sort
# A valid value of each confidential field's kind, validated in the withheld field's place.
_STAND_IN = {PHONE: "13800000000"}


def withhold(record_type: str, data: dict[str, Any] | None, provenance: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(data without the confidential fields, provenance naming them) for an upper level not granted them."""
    hidden = _IN_ORDER.get(record_type)
    if data is None or not hidden:
        return data, provenance
    gone = [n for n in hidden if n in data]
    if not gone:
        return data, provenance
    prov = dict(provenance)
    before = prov.get(WITHHELD)
    prov[WITHHELD] = sorted({*gone, *before}) if before else gone
    return {k: v for k, v in data.items() if k not in CONFIDENTIAL[record_type]}, prov


def withheld_of(rec: dict[str, Any]) -> list[str]:
    prov = rec.get("provenance")
    w = prov.get(WITHHELD) if isinstance(prov, dict) else None
    return w if isinstance(w, list) else []


def stand_ins(rec: dict[str, Any], from_relay: bool) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """(the record's data with stand-ins for its withheld fields, or None when it names none; problems
    as (field, message)) — problems for a gateway naming any, or a relay naming a field that is not
    confidential or that the data still holds."""
    names = withheld_of(rec)
    prov = rec.get("provenance")
    if not names and not (isinstance(prov, dict) and WITHHELD in prov):
        return None, []
    if not from_relay:
        return None, [(WITHHELD, "部门网关报送的记录不能声明隐去字段（provenance.withheld）")]
    typ, data = rec.get("type"), rec.get("data")
    rt = RECORD_TYPES.get(typ) if isinstance(typ, str) else None
    if rt is None or not isinstance(data, dict):
        return None, []
    allowed = CONFIDENTIAL.get(typ, frozenset())
    bad = [n for n in names if not isinstance(n, str) or n not in allowed or n in data]
    if bad:
        return None, [(WITHHELD, f"只能隐去本类记录的保密字段且数据中不得再有：{', '.join(map(str, bad))}"
                                 f"（可隐去：{', '.join(sorted(allowed)) or '无'}）")]
    return {**data, **{n: _STAND_IN[rt[n].kind] for n in names}}, []


def reject(c: Candidate, problems: list[tuple[str, str]]) -> None:
    for fld, message in problems:
        c.reasons.append(reason("provenance", ENVELOPE_LABELS["provenance"], fld, "withheld", message))
