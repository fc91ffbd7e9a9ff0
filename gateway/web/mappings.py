"""字段映射: per source, map each standard field with transforms, live preview, versions, diff, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

from gateway.accounts.web import actor, audit, require
from gateway.config import SourceConfig
from gateway.errors import FatalError, MappingError
from gateway.mappings import diff, get_text, list_versions, preview, rollback, row_fields_note, save_version
from gateway.mappings.impact import MappingImpact, compare
from gateway.standard.schema import RECORD_TYPES
from gateway.web import mapping_form as mf
from gateway.web.app import gw
from gateway.web.sources import sample, source_config

bp = Blueprint("mappings", __name__, url_prefix="/mappings")
# Rows a change is measured over; beyond it the editor says the figures are an estimate.
IMPACT_ROWS = 20_000


def _mapped_sources() -> list[SourceConfig]:
    cfg = gw().config
    return [s for s in cfg.sources if s.mapping is not None] if cfg else []


def _source(name: str) -> SourceConfig:
    sc = source_config(name)
    if sc.mapping is None:
        abort(404)
    return sc


def _current_text(sc: SourceConfig) -> str:
    try:
        return Path(sc.mapping).read_text(encoding="utf-8")  # type: ignore[arg-type]
    except OSError:
        return ""


def _compile(sc: SourceConfig, text: str, columns: list[str] | None) -> Any:
    from gateway.sync.pipeline import compile_source

    return compile_source(gw().config, sc, text, columns or None)


def _source_rows(sc: SourceConfig) -> tuple[list[str], list[Any], str | None]:
    """The source as the editor reads it, once per request: columns, up to IMPACT_ROWS + 1 rows (the
    preview shows the first 20, the impact compares them all), and the Chinese error if unreadable."""
    return sample(sc, IMPACT_ROWS + 1)


def _impact(sc: SourceConfig, new: Any, current_text: str, columns: list[str], rows: list[Any],
            err: str | None) -> MappingImpact | None:
    """What replacing the current mapping with `new` does to the source's records (None: source unreadable)."""
    if err is not None:
        return None
    try:
        current = _compile(sc, current_text, columns) if current_text.strip() else None
    except MappingError:
        current = None  # a current file that no longer compiles: every valid record counts as new
    return compare(current, new, rows[:IMPACT_ROWS], truncated=len(rows) > IMPACT_ROWS)


def _needs_confirmation(impact: MappingImpact | None) -> bool:
    """A key change deletes and re-creates records at the hub: saving it must name the count."""
    return impact is not None and impact.rekeyed > 0 and request.form.get("confirm_rekey") != str(impact.rekeyed)


def _edit_page(sc: SourceConfig, text: str, **confirm: Any) -> Any:
    rt = RECORD_TYPES[sc.record_type]
    rows, description = mf.rows_from_text(text, rt)
    columns, _sample_rows, sample_error = sample(sc)
    versions = list_versions(gw().engine, sc.name)
    return render_template(
        "mapping_edit.html", s=sc, rt=rt, rows=rows, description=description, columns=columns,
        sample_error=sample_error, versions=list(reversed(versions)), kinds=mf.KIND_LABELS, text=text, **confirm,
    )


@bp.get("/")
@require("view")
def index() -> Any:
    rows = []
    for sc in _mapped_sources():
        versions = list_versions(gw().engine, sc.name)
        rows.append({"s": sc, "latest": versions[-1] if versions else None, "count": len(versions)})
    return render_template("mappings.html", rows=rows, types=RECORD_TYPES)


@bp.get("/<source>")
@require("view")
def edit(source: str) -> Any:
    sc = _source(source)
    return _edit_page(sc, _current_text(sc))


@bp.post("/<source>/api/preview")
@require("view")
def api_preview(source: str) -> Any:
    """Map the sample rows with the form as it is now (not saved); per field values or Chinese errors."""
    sc = _source(source)
    rt = RECORD_TYPES[sc.record_type]
    current = _current_text(sc)
    try:
        text = mf.text_from_rows(sc.record_type, mf.rows_from_form(request.form, rt), request.form.get("description", ""),
                                 current)
    except mf.FormProblem as e:
        return jsonify({"ok": False, "problems": str(e).splitlines(), "rows": []})
    columns, rows, err = _source_rows(sc)
    try:
        mapping = _compile(sc, text, columns)
    except MappingError as e:
        return jsonify({"ok": False, "problems": [mf.problem_text(p, rt) for p in e.problems], "rows": [], "text": text})
    impact = _impact(sc, mapping, current, columns, rows, err)
    out = []
    for p in preview(mapping, rows, 20):
        out.append({
            "locator": p.locator, "key": p.key, "ok": p.ok, "record": p.record,
            "errors": [{"field": e.field, "label": e.label, "value": None if e.value is None else str(e.value),
                        "message": e.message} for e in p.errors],
        })
    return jsonify({
        "ok": True, "text": text, "rows": out, "sample_error": err,
        "fields": [{"name": f.name, "label": f.label} for f in rt.fields],
        "summary": f"样例 {len(out)} 行：{sum(1 for r in out if r['ok'])} 行通过，{sum(1 for r in out if not r['ok'])} 行有错误",
        "impact": impact.as_dict() if impact is not None else None,
        "row_fields": row_fields_note(mapping),  # fields the bulk path computes row by row, and why
    })


@bp.post("/<source>")
@require("edit_mappings")
def save(source: str) -> Any:
    sc = _source(source)
    rt = RECORD_TYPES[sc.record_type]
    comment = request.form.get("comment", "").strip()
    if not comment:
        flash("请填写修改说明", "error")
        return redirect(url_for("mappings.edit", source=source))
    current = _current_text(sc)
    columns, rows, err = _source_rows(sc)
    try:
        text = mf.text_from_rows(sc.record_type, mf.rows_from_form(request.form, rt), request.form.get("description", ""),
                                 current)
        mapping = _compile(sc, text, columns)
    except mf.FormProblem as e:
        flash(f"未保存：{e}", "error")
        return redirect(url_for("mappings.edit", source=source))
    except MappingError as e:
        flash("未保存：" + "；".join(mf.problem_text(p, rt) for p in e.problems), "error")
        return redirect(url_for("mappings.edit", source=source))
    impact = _impact(sc, mapping, current, columns, rows, err)
    if _needs_confirmation(impact):
        return _edit_page(sc, text, confirm=impact, comment=comment)
    old = list_versions(gw().engine, sc.name)
    path = Path(sc.mapping)  # type: ignore[arg-type]
    # The file is what sync reads; write it atomically, then record the version.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    n = save_version(gw().engine, sc.name, text, actor(), comment)
    audit("mapping.save", sc.name, {"version": old[-1].version if old else None},
          {"version": n, "comment": comment, "impact": impact.as_dict() if impact else None})
    flash(f"已保存为版本 {n}" + (f"。{impact.summary()}" if impact and impact.changes_anything else ""), "ok")
    return redirect(url_for("mappings.edit", source=source))


@bp.get("/<source>/diff")
@require("view")
def show_diff(source: str) -> Any:
    sc = _source(source)
    a, b = request.args.get("a", type=int), request.args.get("b", type=int)
    if a is None or b is None:
        abort(400, description="请选择要比较的两个版本")
    try:
        text = diff(gw().engine, sc.name, a, b)
    except FatalError:
        abort(404)
    return render_template("mapping_diff.html", s=sc, a=a, b=b, lines=text.splitlines())


@bp.post("/<source>/rollback")
@require("edit_mappings")
def do_rollback(source: str) -> Any:
    sc = _source(source)
    version = request.form.get("version", type=int)
    if version is None:
        abort(400)
    try:
        target = get_text(gw().engine, sc.name, version)
    except FatalError:
        abort(404)
    current = _current_text(sc)
    columns, rows, err = _source_rows(sc)
    try:
        impact = _impact(sc, _compile(sc, target, columns), current, columns, rows, err)
    except MappingError:
        impact = None  # that version no longer compiles against the source: rolled back as asked, sync reports it
    if _needs_confirmation(impact):
        return _edit_page(sc, current, rollback_confirm=impact, rollback_version=version)
    n = rollback(gw().engine, sc.name, version, actor(), Path(sc.mapping))  # type: ignore[arg-type]
    audit("mapping.rollback", sc.name, {"to_version": version},
          {"version": n, "impact": impact.as_dict() if impact else None})
    flash(f"已回滚到版本 {version}（保存为新版本 {n}）", "ok")
    return redirect(url_for("mappings.edit", source=source))
