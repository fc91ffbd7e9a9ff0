"""记录录入 (placeholder)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from gateway.accounts.web import require

bp = Blueprint("records", __name__, url_prefix="/records")


@bp.get("/")
@require("view")
def index() -> Any:
    return render_template("accounts/error.html", code=200, title="记录录入", message="建设中")


@bp.get("/<record_type>/edit/<path:key>")
@require("view")
def edit(record_type: str, key: str) -> Any:
    return index()
