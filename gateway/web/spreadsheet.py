"""表格导入 (placeholder)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from gateway.accounts.web import require

bp = Blueprint("spreadsheet", __name__, url_prefix="/spreadsheet")


@bp.get("/")
@require("view")
def index() -> Any:
    return render_template("accounts/error.html", code=200, title="表格导入", message="建设中")
