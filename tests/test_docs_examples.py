"""Every TOML example in docs/*.md is valid TOML; mapping examples compile; what the docs say about
substr and about PostgreSQL's and MariaDB's column names is what happens."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.errors import MappingError
from gateway.mappings import load_mapping
from gateway.standard.schema import RECORD_TYPES

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.S | re.M)


def toml_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            out.append((f"{doc.name}:{text[: m.start()].count(chr(10)) + 1}", m.group(1)))
    return out


BLOCKS = toml_blocks()


def test_the_docs_have_toml_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_every_toml_block_in_the_docs_parses(where: str, block: str) -> None:
    try:
        tomllib.loads(block)
    except tomllib.TOMLDecodeError as e:
        pytest.fail(f"{where}: invalid TOML: {e}")


def transform_arguments() -> list[tuple[str, str]]:
    """The argument examples in docs/mappings.md's transform table that are meant literally
    (schematic ones, with `...` or `a | b` alternatives, are left out)."""
    text = (DOCS / "mappings.md").read_text(encoding="utf-8")
    table = text[text.index("### Transforms") : text.index("### Expressions")]
    out = []
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for snippet in re.findall(r"`([^`]+)`", cells[1]):
            if snippet.startswith("{") and "..." not in snippet and "\\|" not in snippet:
                out.append((cells[0].strip("`"), snippet))
    return out


ARGUMENTS = transform_arguments()


def test_the_literal_transform_arguments_are_valid_toml() -> None:
    assert {name for name, _ in ARGUMENTS} >= {"convert_unit", "concat"}
    bad = []
    for name, snippet in ARGUMENTS:
        try:
            tomllib.loads(f"v = {snippet}")
        except tomllib.TOMLDecodeError as e:
            bad.append(f"{name}: {snippet}: {e}")
    assert not bad, bad


def _record_type_of(doc: dict) -> str | None:
    """The record type a mapping block (or a block of field lines) is for; None if it is not one."""
    if "fields" in doc:
        return doc.get("record_type")
    fitting = [t for t, rt in RECORD_TYPES.items() if doc and all(k in rt.field_map for k in doc)]
    return fitting[0] if fitting else None


def _is_mapping(block: str) -> bool:
    try:
        return _record_type_of(tomllib.loads(block)) is not None
    except tomllib.TOMLDecodeError:
        return True  # an invalid block fails its own parse test; compiling it here would only say so twice


MAPPING_BLOCKS = [(w, b) for w, b in BLOCKS if _is_mapping(b)]


def test_the_docs_hold_mapping_examples() -> None:
    assert len(MAPPING_BLOCKS) >= 3, "the mapping examples were found (a change to the block finder would hide them)"


@pytest.mark.parametrize(("where", "block"), MAPPING_BLOCKS, ids=[w for w, _ in MAPPING_BLOCKS])
def test_mapping_examples_compile(where: str, block: str) -> None:
    doc = tomllib.loads(block)
    rtype = _record_type_of(doc)
    assert rtype is not None
    whole = "fields" in doc
    text = block if whole else f'record_type = "{rtype}"\n[fields]\n{block}'
    try:
        load_mapping(text, rtype)
    except MappingError as e:
        # A block of a few field lines leaves the other required fields unmapped; nothing else may fail.
        real = [p for p in e.problems if whole or "is not mapped" not in p]
        assert not real, f"{where}: {real}"


def test_substr_counts_from_0_as_the_docs_say() -> None:
    m = load_mapping(
        'record_type = "material"\n[fields]\n'
        'material_id = { expr = "substr(bm, 0, 6)" }\nmaterial_name = { expr = "substr(bm, 6)" }\n'
        'category_code = { constant = "1010100" }\nunit = { constant = "个" }\nreserve_mode = { constant = "1" }\n'
    )
    record, problems = m.map_fields({"bm": "330106001"})
    assert problems == [] and record is not None
    assert (record["material_id"], record["material_name"]) == ("330106", "001")


def test_the_quoted_convert_unit_example_converts() -> None:
    [block] = [b for w, b in BLOCKS if "convert_unit" in b]
    m = load_mapping(
        'record_type = "stock"\n[fields]\n' + block + 'material_id = "bm"\nunit = { constant = "吨" }\n'
        'checked_date = { constant = "2024-03-01" }\n'
    )
    record, problems = m.map_fields({"bm": "WZ1", "sl": "500", "dw": "公斤", "ck": "二号库"})
    assert problems == [] and record is not None
    assert (record["quantity"], record["depot_id"]) == (Decimal("0.5"), "CK002")


def _columns(url: str) -> tuple[list[str], list[str]]:
    eng = sa.create_engine(url)
    try:
        with eng.begin() as c:
            c.exec_driver_sql("CREATE TABLE KC (WZBM varchar(32), SL numeric(10, 2))")
        insp = sa.inspect(eng)
        tables = [t for t in insp.get_table_names() if t.lower() == "kc"]
        return tables, [col["name"] for col in insp.get_columns(tables[0])]
    finally:
        eng.dispose()


def test_postgresql_folds_unquoted_names_to_lower_case(pg_url: str) -> None:
    assert _columns(pg_url) == (["kc"], ["wzbm", "sl"])


def test_mariadb_keeps_the_case_names_were_created_with(mysql_url: str) -> None:
    assert _columns(mysql_url) == (["KC"], ["WZBM", "SL"])
