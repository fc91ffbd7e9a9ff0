"""`gateway demo --once`: the README's main command, end to end on embedded defaults."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.demo.layout import free_port
from gateway.demo.runner import MARKER, DemoError, prepare_folder
from gateway.demo.sample import DEPARTMENT_CODE, build
from gateway.standard.uscc import is_valid


def _demo(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("gateway")  # the console script, as a newcomer runs it
    return subprocess.run(
        [str(exe), "--log-level", "WARNING", "demo", *args],
        cwd=cwd, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=120,
    )


def _hub_records(root: Path) -> dict[tuple[str, str], dict]:
    import json

    db = sqlite3.connect(root / "hub" / "state" / "hub.db")
    try:
        rows = db.execute("SELECT type, key, data FROM records WHERE department = ? AND NOT deleted", (DEPARTMENT_CODE,))
        return {(t, k): json.loads(d) for t, k, d in rows}
    finally:
        db.close()


def test_demo_once_delivers_every_valid_record_and_lists_rejections(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    r = _demo(["--once", "--dir", str(root)], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "全部有效记录均已送达并取得已验证的中心回执" in out
    # Each deliberately bad row is listed with the field and the reason.
    assert "校验位错误" in out and "913302067045682X16" in out
    assert "日期不存在：2023-02-30" in out
    assert "储备数量不能小于 0" in out
    assert "0571-123" in out and "不是有效的电话号码" in out
    # The freshness check shows the batch not counted for 130 days and the water about to expire.
    assert "WZ-0010|CK-001|2023-02：超过 90 天未核查（已 130 天）" in out
    assert "WZ-0008|CK-001|2026-A：25 天后到期" in out

    held = _hub_records(root)
    counts: dict[str, int] = {}
    for t, _ in held:
        counts[t] = counts.get(t, 0) + 1
    s = build()
    bad = {("stock", "WZ-0011|CK-003|"), ("stock", "WZ-0003|CJ-002|"), ("agreement", "YHYJ-XY-2025-003"), ("depot", "CJ-004")}
    assert not bad & set(held), "a rejected row reached the hub"
    assert counts["material"] == len(s.materials) == 12
    assert counts["depot"] == len(s.depots) + len(s.legacy_depots) - 1  # SQL depots + valid village depots (XML)
    assert counts["agreement"] == 2 and counts["capacity"] == 3
    # SQL stock (one bad), the GB18030 CSV (one bad) and the XLSX drop all arrive.
    assert counts["stock"] == (len(s.stock) - 1) + (len(s.drop_csv) - 1) + len(s.drop_xlsx)
    tent = held[("material", "WZ-0001")]
    assert tent["material_name"] == "单帐篷" and tent["reserve_mode"] == "1" and tent["unit"] == "顶"
    assert held[("depot", "CJ-002")]["depot_level"] == "6"  # from the GBK XML export
    assert held[("stock", "WZ-0005|CJ-002|")]["responsible_phone"] == "0571-88123456"  # from the CSV
    assert is_valid(held[("agreement", "YHYJ-XY-2025-001")]["party_b_uscc"])

    # Re-running in the same folder reuses it and still exits 0; nothing is sent twice.
    # It runs on the ports asked for (--port, --hub-port), not the defaults.
    port, hub_port = free_port(0), free_port(0)
    r2 = _demo(["--once", "--dir", str(root), "--port", str(port), "--hub-port", str(hub_port)], tmp_path)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "沿用已有演示目录" in r2.stdout
    assert f'listen = "127.0.0.1:{port}"' in (root / "gateway.toml").read_text(encoding="utf-8")
    assert f'listen = "127.0.0.1:{hub_port}"' in (root / "hub" / "hub.toml").read_text(encoding="utf-8")
    assert _hub_records(root).keys() == held.keys()

    # --fresh starts over in the same folder.
    r3 = _demo(["--once", "--fresh", "--dir", str(root)], tmp_path)
    assert r3.returncode == 0, r3.stdout + r3.stderr
    assert "示例部门数据已生成" in r3.stdout


def test_demo_tiers_brings_the_department_to_the_city_with_its_chain(tmp_path: Path) -> None:
    import json

    root = tmp_path / "demo"
    r = _demo(["--once", "--tiers", "--dir", str(root)], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    township = _hub_records(root)
    assert "各级中心均已收到" in r.stdout and f"乡镇中心 {len(township)}，县级中心 {len(township)}，市级中心 {len(township)}" in r.stdout
    assert "储备库 CJ-001 的保密字段未上报：联系电话" in r.stdout
    db = sqlite3.connect(root / "city" / "state" / "hub.db")
    try:
        rows = {(t, k): (json.loads(d) if d else None, json.loads(p)) for t, k, d, p in
                db.execute("SELECT type, key, data, provenance FROM records WHERE NOT deleted")}
    finally:
        db.close()
    assert rows.keys() == township.keys()
    data, prov = rows[("material", "WZ-0001")]
    assert data == township[("material", "WZ-0001")]
    assert [h["hub"] for h in prov["hubs"]] == ["hub-330110-1", "county-hub-1"]
    depot, depot_prov = rows[("depot", "CJ-001")]
    assert "contact_phone" not in depot and depot_prov["withheld"] == ["contact_phone"]
    assert township[("depot", "CJ-001")]["contact_phone"]  # kept at the township


def test_demo_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = _demo(["--once", "--dir", str(tmp_path / "demo"), "--port", str(port)], tmp_path)
    assert r.returncode != 0
    assert f"端口 {port} 已被占用" in r.stderr
    assert not (tmp_path / "demo").exists()  # refused before anything was made


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DemoError):
        prepare_folder(tmp_path, fresh=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    empty = tmp_path / "new"
    assert prepare_folder(empty, fresh=False) is True
    assert (empty / MARKER).exists()
