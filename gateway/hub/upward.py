"""Update path 1 (提交上级更新) where the level above has no hub yet: the hub's current records of its
area as the standard's workbook — one per department, in the template the importer reads — each
with a detached signature by the hub's key (gateway/workbook/signature.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from gateway.hub import tables as t
from gateway.hub.db import utcnow
from gateway.localtime import local_text, zone_label
from gateway.protocol.suites import PrivateKey
from gateway.standard.schema import RECORD_TYPES
from gateway.workbook.records import write_records
from gateway.workbook.signature import sign_workbook

_UNSAFE = re.compile(r'[\\/:*?"<>|\s]+')


@dataclass
class ExportedWorkbook:
    department: str
    name: str
    path: Path
    signature: Path
    counts: dict[str, int]


def export_area(
    engine: Engine, out_dir: Path, key: PrivateKey, key_id: str, *, office: str, period: str,
    departments: Sequence[str] | None = None, since: str | None = None, timezone: str = "Asia/Shanghai",
) -> list[ExportedWorkbook]:
    """One signed workbook per department of the area (or of `departments`), with its records not
    deleted; `since` (UTC ISO) keeps only those the hub received since then (the period's updates)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        depts = conn.execute(select(t.departments.c.code, t.departments.c.name).order_by(t.departments.c.code)).all()
        wanted = [(c, n) for c, n in depts if not departments or c in departments]
        unknown = sorted(set(departments or ()) - {c for c, _ in depts})
        if unknown:
            raise ValueError(f"中心没有这些部门：{'、'.join(unknown)} / unknown departments: {', '.join(unknown)}")
        done: list[ExportedWorkbook] = []
        exported_at = utcnow()
        for code, name in wanted:
            q = select(t.records.c.type, t.records.c.data).where(t.records.c.department == code, ~t.records.c.deleted)
            if since:
                q = q.where(t.records.c.received_at >= since)
            by_type: dict[str, list[dict[str, Any]]] = {rt: [] for rt in RECORD_TYPES}
            for rtype, data in conn.execute(q.order_by(t.records.c.type, t.records.c.key)):
                if rtype in by_type and data is not None:
                    by_type[rtype].append(data)
            path = out_dir / f"{_UNSAFE.sub('_', name)}_{code}_{_UNSAFE.sub('_', period)}.xlsx"
            info = [
                ("报送单位", office), ("填报部门", f"{name}（{code}）"), ("期间", period),
                ("范围", f"{local_text(since, timezone)} 起接收的记录" if since else "全部现有记录"),
                ("导出时间", f"{local_text(exported_at, timezone)}（{zone_label(timezone)}）"),
                ("签名", f"同目录 {path.name}.sig.json；用 gateway verify-workbook 与报送单位公钥核验"),
            ]
            counts = write_records({k: v for k, v in by_type.items() if v}, path, info)
            sig = sign_workbook(path, key, key_id, {
                "signer": office, "department": code, "department_name": name, "period": period,
                "since": since, "counts": counts,
            })
            done.append(ExportedWorkbook(code, name, path, sig, counts))
    return done
