"""Write the sample department to disk: an SQLite database, a drop folder and a legacy XML export."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from xml.sax.saxutils import escape

from gateway.demo.sample import SampleDepartment

# Column types for the department's tables; everything else is TEXT.
_INTEGER = {"id", "bzq", "xysx", "zcsj"}
TABLES = {
    "wz_jcxx": ("materials", "wzbm"),
    "ck_jbxx": ("depots", "ckbm"),
    "kc_mx": ("stock", "id"),
    "xy_xx": ("agreements", "xybh"),
    "scnl_qy": ("capacity", None),
}
XML_NS = "http://yjgl.yuhang.example.cn/ckgl/2009"


def _create_table(db: sqlite3.Connection, name: str, rows: list[dict], pk: str | None) -> None:
    cols = list(rows[0])
    defs = []
    for c in cols:
        typ = "INTEGER" if c in _INTEGER else "TEXT"
        defs.append(f'"{c}" {typ}' + (" PRIMARY KEY" if c == pk else ""))
    if pk is None:
        defs.append('PRIMARY KEY ("qyxydm", "wzbm")')
    db.execute(f'DROP TABLE IF EXISTS "{name}"')
    db.execute(f'CREATE TABLE "{name}" ({", ".join(defs)})')
    marks = ", ".join("?" for _ in cols)
    db.executemany(f'INSERT INTO "{name}" VALUES ({marks})', [tuple(r.get(c) for c in cols) for r in rows])


def write_database(path: Path, sample: SampleDepartment) -> None:
    """The department's business database (SQLite), recreated from the sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        with db:
            for table, (attr, pk) in TABLES.items():
                _create_table(db, table, getattr(sample, attr), pk)
    finally:
        db.close()


def write_csv_gb18030(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    # Excel in China saves CSV as GB18030/GBK with CRLF line ends.
    with tmp.open("w", encoding="gb18030", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)  # appear complete or not at all


def write_xlsx(path: Path, rows: list[dict], sheet: str = "库存台账") -> None:
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    cols = list(rows[0])
    ws.append(cols)
    for r in rows:
        ws.append([r[c] for c in cols])
    tmp = path.with_name(path.name + ".part")
    wb.save(tmp)
    tmp.replace(path)


def write_legacy_xml(path: Path, rows: list[dict]) -> None:
    """The old depot system's export: GBK, one namespace, one <ck:CK> element per depot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = ['<?xml version="1.0" encoding="GBK"?>', f'<ck:CKDC xmlns:ck="{XML_NS}" dcsj="2009">']
    for r in rows:
        parts.append("  <ck:CK>")
        parts.extend(f"    <ck:{k}>{escape(str(v))}</ck:{k}>" for k, v in r.items())
        parts.append("  </ck:CK>")
    parts.append("</ck:CKDC>")
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(("\r\n".join(parts) + "\r\n").encode("gbk"))
    tmp.replace(path)


def write_department(root: Path, sample: SampleDepartment) -> dict[str, Path]:
    """All of the sample department's data under `root`; returns the paths by role."""
    paths = {
        "database": root / "department" / "yjwz.db",
        "drop": root / "department" / "drop",
        "csv": root / "department" / "drop" / "仓前街道物资台账.csv",
        "xlsx": root / "department" / "drop" / "良渚街道物资台账.xlsx",
        "legacy": root / "department" / "legacy",
        "xml": root / "department" / "legacy" / "ck_export.xml",
    }
    write_database(paths["database"], sample)
    write_csv_gb18030(paths["csv"], sample.drop_csv)
    write_xlsx(paths["xlsx"], sample.drop_xlsx)
    write_legacy_xml(paths["xml"], sample.legacy_depots)
    return paths
