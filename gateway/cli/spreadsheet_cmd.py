"""`gateway template` and `gateway import`: the standard's spreadsheet path (no --config needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.cli.main import Context, cli, domain_errors
from gateway.standard.schema import RECORD_TYPES


@cli.command("template")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Template file (.xlsx).")
@click.option("--type", "types", multiple=True, type=click.Choice(list(RECORD_TYPES)), help="Only these record types (repeatable).")
def template(out: Path, types: tuple[str, ...]) -> None:
    """Write the XLSX collection template (Chinese headers, drop-downs, 说明 sheet)."""
    from gateway.workbook.template import write_template

    write_template(out, types or None)
    click.echo(f"wrote {out}")


@cli.command("verify-workbook")
@click.argument("workbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The sender's public key file (its hub's .pub), as it was given to you.")
@click.option("--signature", "sig_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The signature file (default: <workbook>.sig.json beside it).")
@domain_errors
def verify_workbook_cmd(workbook: Path, key_file: Path, sig_file: Path | None) -> None:
    """Check a workbook sent upward (gateway hub workbook export) against its signature: exit 0 only when intact."""
    from gateway.errors import FatalError
    from gateway.workbook.signature import WorkbookSignatureError, verify_workbook

    try:
        v = verify_workbook(workbook, key_file.read_text(encoding="utf-8").strip(), sig_file)
    except WorkbookSignatureError as e:
        raise FatalError(f"未通过核验 / NOT VERIFIED: {e}") from None
    m = v.manifest
    counts = "，".join(f"{RECORD_TYPES[k].label} {n}" for k, n in (m.get("counts") or {}).items() if k in RECORD_TYPES)
    click.echo(f"核验通过 / VERIFIED: {workbook.name}")
    click.echo(f"  报送单位 {m.get('signer')}（密钥 {m.get('key_id')}，{m.get('suite')}），签名时间 {m.get('signed_at')}")
    click.echo(f"  部门 {m.get('department_name')}（{m.get('department')}），期间 {m.get('period')}；{counts or '无记录'}")
    if v.renamed:
        click.echo(f"  注意：签名时的文件名为 {m.get('file')} / the file was renamed after signing")


def _context(ctx: click.Context):  # type: ignore[no-untyped-def]
    """Code table and extra units from --config when one is given; defaults otherwise."""
    from gateway.standard.validate import DEFAULT_CONTEXT, ValidationContext

    obj = ctx.find_object(Context)
    if obj is None or obj.config_path is None:
        return DEFAULT_CONTEXT
    return ValidationContext.from_config(obj.config)


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "record_type", type=click.Choice(list(RECORD_TYPES)),
              help="Record type of a CSV file; for a workbook, import only this type's sheet.")
@click.option("--encoding", help="CSV encoding (default: detect UTF-8 / UTF-8 BOM / GB18030).")
@click.option("--errors-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Error report: .xlsx (a copy of the workbook with a 错误说明 column) or .csv (an error list).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--enqueue", is_flag=True,
              help="Queue the valid records for pushing to the hub (needs --config); bad rows are not queued.")
@click.option("--operator", default="cli", show_default=True, help="With --enqueue: recorded as who entered the records.")
@click.pass_context
@domain_errors
def import_(ctx: click.Context, file: Path, record_type: str | None, encoding: str | None,
            errors_out: Path | None, as_json: bool, enqueue: bool, operator: str) -> None:
    """Validate FILE (standard workbook .xlsx, or CSV with --type) and report records and row errors.

    Exit code 0 when every row is valid, 1 when some rows have errors (valid rows
    are still queued with --enqueue; re-importing them later sends nothing twice).
    """
    if enqueue and ctx.find_object(Context).config_path is None:  # type: ignore[union-attr]
        raise click.UsageError("--enqueue needs --config FILE (or $GATEWAY_CONFIG)")
    from gateway.spreadsheet.export import write_error_csv, write_error_list_xlsx, write_error_workbook
    from gateway.spreadsheet.importer import import_csv, import_workbook

    vctx = _context(ctx)
    is_csv = file.suffix.lower() in (".csv", ".txt")
    if is_csv:
        if record_type is None:
            raise click.UsageError("a CSV file needs --type (material, depot, stock, agreement or capacity)")
        result = import_csv(file, record_type, encoding, context=vctx)
    else:
        result = import_workbook(file, context=vctx)
        if record_type is not None:
            label = RECORD_TYPES[record_type].label
            result.records = [r for r in result.records if r.record_type == record_type]
            sheets = {label, record_type} | ({"协议物资"} if record_type == "agreement" else set())
            result.errors = [e for e in result.errors if e.sheet in sheets]
    if errors_out is not None and result.errors:
        if errors_out.suffix.lower() == ".csv":
            write_error_csv(result, errors_out)
        elif is_csv:
            write_error_list_xlsx(result, errors_out)
        else:
            write_error_workbook(file, result, errors_out)
    queued = _enqueue(ctx, result, operator, file.name, record_type if is_csv else None) if enqueue else None
    if as_json:
        summary = result.summary()
        if queued is not None:
            summary["enqueued"] = queued
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        click.echo(f"{file}:")
        counts = result.counts()
        for name, rt in RECORD_TYPES.items():
            if name in counts:
                click.echo(f"  {rt.label} ({name}): {counts[name]} 条记录")
        if not counts:
            click.echo("  没有有效记录")
        click.echo(f"  错误 {len(result.errors)} 条" + (f"，报告已写入 {errors_out}" if errors_out and result.errors else ""))
        for e in result.errors:
            click.echo(f"    {e.sheet} 第 {e.row} 行 {e.label or e.field} [{e.rule}] {e.message}")
        if queued is not None:
            click.echo("  已入队：" + "；".join(
                f"{RECORD_TYPES[t].label} 新增 {c['new']}、变更 {c['changed']}、未变 {c['unchanged']}" for t, c in queued.items()
            ) if queued else "  没有可入队的记录")
    if result.errors:
        sys.exit(1)


def _enqueue(  # type: ignore[no-untyped-def]
    ctx: click.Context, result, operator: str, filename: str, csv_type: str | None
) -> dict[str, dict[str, int]]:
    """Queue valid records per type through the sync pipeline (source "spreadsheet", key = record key)."""
    from gateway.standard.schema import record_key
    from gateway.store import open_store
    from gateway.sync import enqueue_records

    engine = open_store(ctx.find_object(Context).config.state_path)  # type: ignore[union-attr]
    out: dict[str, dict[str, int]] = {}
    try:
        for name in RECORD_TYPES:
            recs = [(record_key(name, r.data), r.data) for r in result.records if r.record_type == name]
            if recs:
                s = enqueue_records(engine, "spreadsheet", name, recs, operator, want_ids=False)
                out[name] = {"new": s.new, "changed": s.changed, "unchanged": s.unchanged}
        from gateway.sync.problems import record_import

        # The refused rows stay on the 问题数据 page until a later import of this file fixes them.
        record_import(engine, filename, result, csv_type)
    finally:
        engine.dispose()
    return out
