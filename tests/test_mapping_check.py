"""`gateway mapping check` compiles a mapping exactly as sync and preview do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import cli

# Stock whose depot codes are translated through another source (old -> new code),
# in a unit only the config's [standard] extra_units knows.
STOCK = """
record_type = "stock"

[fields]
material_id = "wzbm"
depot_id = { column = "ckbm", transforms = [{ lookup = { source = "ck", key = "old", value = "new" } }] }
quantity = { column = "sl", transforms = ["number"] }
unit = { column = "dw", default = "盏" }
checked_date = { constant = "2024-03-01" }
"""

CONFIG = """
[department]
code = "330106001"
name = "测试应急管理局"

[hub]
url = "http://127.0.0.1:9"

[keys]
signing_key = "gateway.key"
key_id = "k1"

[standard]
extra_units = ["盏"]

[[sources]]
name = "kc"
type = "sql"
record_type = "stock"
mapping = "stock.toml"
strategy = "fingerprint"
[sources.settings]
url = "sqlite:///src.db"
table = "kc"
key_columns = ["id"]

[[sources]]
name = "ck"
type = "sql"
record_type = "depot"
mapping = "depot.toml"
strategy = "fingerprint"
[sources.settings]
url = "sqlite:///src.db"
table = "ck"
key_columns = ["old"]
"""

DEPOT = """
record_type = "depot"
[fields]
depot_id = "new"
depot_name = "new"
depot_level = { constant = "3" }
region_code = { constant = "330106001000" }
address = "new"
mgmt_unit_name = "new"
contact_name = "new"
contact_phone = { constant = "0571-88888888" }
"""


def write_department(tmp: Path, stock_mapping: str = STOCK) -> Path:
    db = sqlite3.connect(tmp / "src.db")
    db.executescript(
        "create table kc (id integer primary key, wzbm text, ckbm text, sl text, dw text);"
        "insert into kc values (1, 'WZ001', 'OLD1', '5', '盏');"
        "create table ck (old text primary key, new text);"
        "insert into ck values ('OLD1', 'CK001');"
    )
    db.commit()
    db.close()
    (tmp / "gateway.key").write_text("unused")
    (tmp / "stock.toml").write_text(stock_mapping, encoding="utf-8")
    (tmp / "depot.toml").write_text(DEPOT, encoding="utf-8")
    (tmp / "gateway.toml").write_text(CONFIG, encoding="utf-8")
    return tmp / "gateway.toml"


def test_check_accepts_a_lookup_on_another_source_as_sync_does(tmp_path: Path) -> None:
    cfg = write_department(tmp_path)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "mapping", "check", "kc"])
    assert r.exit_code == 0, r.output
    assert "映射正确：5 个字段" in r.output
    # The same mapping, previewed: the lookup and the extra unit work on a real row.
    r = CliRunner().invoke(cli, ["--config", str(cfg), "mapping", "preview", "kc"])
    assert r.exit_code == 0 and "通过 1，有错误 0" in r.output and '"depot_id": "CK001"' in r.output, r.output


def test_check_still_names_a_real_mistake_and_exits_1(tmp_path: Path) -> None:
    cfg = write_department(tmp_path, STOCK.replace('"wzbm"', '"wzbmm"'))
    r = CliRunner().invoke(cli, ["--config", str(cfg), "mapping", "check", "kc"])
    assert r.exit_code == 1, r.output
    assert "fields.material_id: source has no column 'wzbmm'; did you mean 'wzbm'?" in r.output
    assert "stock.toml" in r.output
