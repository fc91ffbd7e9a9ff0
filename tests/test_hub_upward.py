"""Update path 1 (提交上级更新): the hub's area as the standard's workbook, signed, checked by a level
above that has only the hub's public key, and read back by the template's own importer (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select

from gateway.cli import cli as gateway_cli
from gateway.demo.runner import run_demo
from gateway.demo.sample import DEPARTMENT_CODE
from gateway.hub import tables as t
from gateway.hub.cli import hub as hub_cli
from gateway.hub.config import load_hub_config
from gateway.protocol.keys import new_private_key, public_key_of, public_key_text
from gateway.spreadsheet import import_workbook
from gateway.standard.schema import record_key
from gateway.workbook.signature import WorkbookSignatureError, sign_workbook, verify_workbook


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("upward") / "demo"
    assert run_demo(root, once=True, fresh=True, echo=lambda _line: None) == 0
    out = root.parent / "报送"
    r = CliRunner().invoke(hub_cli, ["--config", str(root / "hub" / "hub.toml"), "workbook", "export",
                                     "--out", str(out), "--period", "2026年第四季度"])
    assert r.exit_code == 0, r.output
    return root, out


def _hub_records(root: Path) -> dict[tuple[str, str], dict]:
    engine = create_engine(load_hub_config(root / "hub" / "hub.toml").database)
    with engine.connect() as c:
        rows = c.execute(select(t.records.c.type, t.records.c.key, t.records.c.data)
                         .where(t.records.c.department == DEPARTMENT_CODE, ~t.records.c.deleted)).all()
    engine.dispose()
    return {(ty, k): d for ty, k, d in rows}


def test_the_exported_workbook_verifies_and_reads_back_as_the_hubs_records(exported: tuple[Path, Path]) -> None:
    root, out = exported
    [book] = sorted(out.glob("*.xlsx"))
    assert DEPARTMENT_CODE in book.name and "2026年第四季度" in book.name
    key = root / "hub" / "keys" / "hub.pub"
    assert key.exists(), sorted(p.name for p in (root / "hub").rglob("*.pub"))
    r = CliRunner().invoke(gateway_cli, ["verify-workbook", str(book), "--key", str(key)])
    assert r.exit_code == 0, r.output
    assert "核验通过" in r.output and "2026年第四季度" in r.output and "应急物资基础信息 12" in r.output
    # The level above reads it with the template's importer: no errors, exactly the hub's records.
    result = import_workbook(book)
    assert result.errors == []
    back = {(rec.record_type, record_key(rec.record_type, rec.data)): rec.data for rec in result.records}
    assert back == _hub_records(root)
    info = {row[8].value: row[9].value for row in openpyxl.load_workbook(book)["说明"].iter_rows(max_row=6)}
    assert info["期间"] == "2026年第四季度" and "北京时间" in info["导出时间"] and DEPARTMENT_CODE in info["填报部门"]


def test_a_changed_cell_or_another_key_fails_verification(exported: tuple[Path, Path], tmp_path: Path) -> None:
    root, out = exported
    [book] = sorted(out.glob("*.xlsx"))
    key = root / "hub" / "keys" / "hub.pub"
    changed = tmp_path / book.name
    wb = openpyxl.load_workbook(book)
    wb["应急物资基础信息"]["B3"] = "被改过的名称"
    wb.save(changed)
    (tmp_path / (book.name + ".sig.json")).write_bytes((out / (book.name + ".sig.json")).read_bytes())
    r = CliRunner().invoke(gateway_cli, ["verify-workbook", str(changed), "--key", str(key)])
    assert r.exit_code != 0 and "未通过核验" in r.output and "内容在签名后被改动" in r.output
    other = tmp_path / "other.pub"
    other.write_text(public_key_text(public_key_of(new_private_key())), encoding="utf-8")
    r = CliRunner().invoke(gateway_cli, ["verify-workbook", str(book), "--key", str(other)])
    assert r.exit_code != 0 and "签名无效" in r.output
    # A manifest edited to claim another period breaks the signature too.
    sig = json.loads((out / (book.name + ".sig.json")).read_text(encoding="utf-8"))
    sig["manifest"]["period"] = "2027年第一季度"
    forged = tmp_path / "forged.sig.json"
    forged.write_text(json.dumps(sig, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(WorkbookSignatureError, match="签名无效"):
        verify_workbook(book, key.read_text(encoding="utf-8"), forged)


def test_an_sm2_hub_signs_with_sm3_digest(tmp_path: Path) -> None:
    book = tmp_path / "a.xlsx"
    openpyxl.Workbook().save(book)
    key = new_private_key("sm2-sm3")
    sig = sign_workbook(book, key, "hub-sm2", {"period": "P"})
    manifest = json.loads(sig.read_text(encoding="utf-8"))["manifest"]
    assert manifest["suite"] == "sm2-sm3" and manifest["digest"]["alg"] == "sm3"
    assert verify_workbook(book, public_key_text(public_key_of(key))).manifest["period"] == "P"
    with pytest.raises(WorkbookSignatureError, match="sm2-sm3"):
        verify_workbook(book, public_key_text(public_key_of(new_private_key())))
