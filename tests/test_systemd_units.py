"""The shipped systemd units pass `systemd-analyze verify` and carry the hardening we promise."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
INSTALLED_GATEWAY = "/opt/emergency-gateway/venv/bin/gateway"


def _units() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


@pytest.mark.parametrize("unit", _units(), ids=lambda p: p.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: scripts/bootstrap --test installs the systemd package"
    # verify checks that ExecStart exists; point it at this checkout's installed command
    # instead of the production path /opt/emergency-gateway/venv.
    here = str(Path(sys.executable).parent / "gateway")
    text = unit.read_text(encoding="utf-8").replace(INSTALLED_GATEWAY, here)
    copy = tmp_path / unit.name
    copy.write_text(text, encoding="utf-8")
    r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Unknown key" not in r.stderr, r.stderr


@pytest.mark.parametrize("unit", _units(), ids=lambda p: p.name)
def test_unit_hardening(unit: Path) -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(unit.read_text(encoding="utf-8"))
    s = cp["Service"]
    assert s["User"] and s["User"] != "root"
    assert s["ProtectSystem"] == "strict"
    assert s["ProtectHome"] == "yes"
    assert s["PrivateTmp"] == "yes"
    assert s["NoNewPrivileges"] == "yes"
    assert s["CapabilityBoundingSet"] == ""
    assert "AF_INET" in s["RestrictAddressFamilies"]
    assert s["Restart"] == "on-failure"
    assert s["StateDirectory"] and s["LogsDirectory"]
    assert "LoadCredential" in s
    assert " run" in s["ExecStart"]
