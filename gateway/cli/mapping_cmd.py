"""`gateway mapping preview|check|versions|diff|rollback SOURCE`."""

from __future__ import annotations

import getpass
import json

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx


def _engine(ctx: Context):  # type: ignore[no-untyped-def]
    from gateway.store import open_store

    return open_store(ctx.config.state_path)


def _source(ctx: Context, name: str):  # type: ignore[no-untyped-def]
    try:
        return ctx.config.source(name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None


@cli.group("mapping")
def mapping_group() -> None:
    """Field mappings: preview over live rows, check, version history, diff and rollback."""


@mapping_group.command("preview")
@click.argument("source")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@domain_errors
def preview_cmd(ctx: Context, source: str, limit: int, as_json: bool) -> None:
    """Map the first LIMIT rows of SOURCE and show each record or each field's error."""
    from gateway.mappings import preview, row_fields_note
    from gateway.sync.pipeline import compile_source, open_adapter

    sc = _source(ctx, source)
    with open_adapter(ctx.config, sc) as adapter:
        mapping = compile_source(ctx.config, sc, columns=adapter.columns())
        result = preview(mapping, adapter.fetch(None), limit)
    note = row_fields_note(mapping)  # the bulk path computes these fields row by row
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in result], ensure_ascii=False, indent=2, default=str))
        if note:
            click.echo(note, err=True)  # stdout stays the JSON list
        return
    ok = sum(1 for r in result if r.ok)
    click.echo(f"预览 {len(result)} 行：通过 {ok}，有错误 {len(result) - ok}")
    if note:
        click.echo(note)
    for r in result:
        if r.ok:
            click.echo(f"✓ {r.locator}: {json.dumps(r.record, ensure_ascii=False, default=str)}")
        else:
            click.echo(f"✗ {r.locator}:")
            for e in r.errors:
                click.echo(f"    {e.label}({e.field}) 值 {e.value!r}：{e.message} [{e.rule}]")


@mapping_group.command("check")
@click.argument("source")
@pass_ctx
@domain_errors
def check_cmd(ctx: Context, source: str) -> None:
    """Compile SOURCE's mapping against the source's columns, as sync does; list every problem.

    Exit 1 when the mapping has problems (each printed), 2 when the config or source cannot be read."""
    from gateway.errors import MappingError
    from gateway.sync.pipeline import compile_source, open_adapter

    sc = _source(ctx, source)
    with open_adapter(ctx.config, sc) as adapter:
        cols = adapter.columns()
    try:
        m = compile_source(ctx.config, sc, columns=cols)
    except MappingError as e:
        # Problems found is the answer a check gives, not a failure to run it: exit 1, as linters do.
        click.echo(f"映射有错误：{e}", err=True)
        raise SystemExit(1) from None
    click.echo(f"映射正确：{len(m.fields)} 个字段，读取列 {', '.join(sorted(m.source_fields))}")


@mapping_group.command("versions")
@click.argument("source")
@pass_ctx
@domain_errors
def versions_cmd(ctx: Context, source: str) -> None:
    """List the stored versions of SOURCE's mapping."""
    from gateway.mappings import list_versions

    _source(ctx, source)
    for v in list_versions(_engine(ctx), source):
        click.echo(f"v{v.version}  {v.created_at}  {v.author}  {v.comment}")


@mapping_group.command("diff")
@click.argument("source")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@pass_ctx
@domain_errors
def diff_cmd(ctx: Context, source: str, v1: int, v2: int) -> None:
    """Unified diff between two versions of SOURCE's mapping."""
    from gateway.mappings import diff

    click.echo(diff(_engine(ctx), source, v1, v2), nl=False)


@mapping_group.command("rollback")
@click.argument("source")
@click.argument("version", type=int)
@click.option("--author", default=None, help="Recorded as who rolled back (default: the OS user).")
@pass_ctx
@domain_errors
def rollback_cmd(ctx: Context, source: str, version: int, author: str | None) -> None:
    """Make VERSION current again: saved as a new version and written to the mapping file."""
    from gateway.mappings import rollback

    sc = _source(ctx, source)
    n = rollback(_engine(ctx), source, version, author or getpass.getuser(), sc.mapping)
    click.echo(f"已回滚：版本 {version} 的内容另存为版本 {n}，并写入 {sc.mapping}")
