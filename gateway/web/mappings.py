"""字段映射 (placeholder until the editor lands)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from gateway.accounts.web import require

bp = Blueprint("mappings", __name__, url_prefix="/mappings")


@bp.get("/")
@require("view")
def index() -> Any:
    return render_template("accounts/error.html", code=200, title="字段映射", message="建设中")


@bp.get("/<source>")
@require("view")
def edit(source: str) -> Any:
    return index()
