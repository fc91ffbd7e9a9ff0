"""`gateway standard ...`: the data standard as JSON Schema and as a fields table."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.main import cli
from gateway.standard.schema import RECORD_TYPES


@cli.group("standard")
def standard() -> None:
    """The data standard (record types, fields, rules)."""


@standard.command("schema")
@click.option("--type", "record_type", type=click.Choice(list(RECORD_TYPES)), help="One record type (default: all under $defs).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout.")
def schema(record_type: str | None, out: Path | None) -> None:
    """Print the JSON Schema (Draft 2020-12) of the standard."""
    from gateway.standard.jsonschema import json_schema

    text = json.dumps(json_schema(record_type), ensure_ascii=False, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@standard.command("fields")
def fields() -> None:
    """Print the fields table (Markdown) that docs/standard.md embeds."""
    from gateway.standard.doc import fields_markdown

    click.echo(fields_markdown(), nl=False)
