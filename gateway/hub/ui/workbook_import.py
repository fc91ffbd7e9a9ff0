"""The operators' page for a signed workbook from a lower level (报表导入): upload the workbook and its
signature, name the lower hub that sent it, and read the row-level report (gateway/hub/workbook_import.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import render_template, request
from sqlalchemy import select

from gateway.accounts.web import audit, require
from gateway.hub import registry, tables
from gateway.hub.ui.views import _common, _engine, _hub, bp
from gateway.hub.workbook_import import WorkbookRefused, import_signed_workbook

MAX_UPLOAD = 50 * 1024 * 1024  # a clerk's workbook is far smaller


def _relays() -> list[Any]:
    """The active relays, each with its name (registry.KeyEntry has none)."""
    with _engine().connect() as c:
        names = dict(c.execute(select(tables.relays.c.key_id, tables.relays.c.name)).all())
        return [(r, names.get(r.key_id, r.key_id)) for r in registry.list_relays(c) if not r.revoked]


@bp.get("/workbook-import")
@require("import_records")
def workbook_import() -> Any:
    return render_template("hub_ui/workbook_import.html", relays=_relays(), result=None, refused=None, **_common())


@bp.post("/workbook-import")
@require("import_records")
def workbook_import_post() -> Any:
    relays = _relays()
    book, sig = request.files.get("workbook"), request.files.get("signature")
    relay = next((r for r, _name in relays if r.key_id == request.form.get("relay", "")), None)
    refused: str | None = None
    result = None
    if book is None or not book.filename or sig is None or not sig.filename:
        refused = "请选择工作簿（.xlsx）及其签名文件（.sig.json）"
    elif relay is None:
        refused = "请选择报送的下级中心"
    else:
        with tempfile.TemporaryDirectory(prefix="hub-import-") as tmp:
            wb_path, sig_path = Path(tmp) / "workbook.xlsx", Path(tmp) / "workbook.sig.json"
            for f, path in ((book, wb_path), (sig, sig_path)):
                f.save(path)
                if path.stat().st_size > MAX_UPLOAD:
                    refused = f"文件过大（{f.filename}）"
            if refused is None:
                try:
                    result = import_signed_workbook(_hub(), wb_path, sig_path, relay.public_key, file_name=book.filename)
                except WorkbookRefused as e:
                    refused = str(e)
    audit("workbook.import", book.filename if book else None,
          after={"relay": relay.key_id if relay else None, "refused": refused,
                 **({"batch_id": result.batch_id, "counts": result.counts, "errors": len(result.errors)} if result else {})})
    return render_template("hub_ui/workbook_import.html", relays=relays, result=result, refused=refused,
                           **_common()), (400 if refused else 200)
