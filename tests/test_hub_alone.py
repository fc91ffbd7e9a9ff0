"""The hub deploys on its own: it loads nothing of the gateway's side, and `gateway-hub` serves without it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from tests.fixtures.hub import LiveHub, batch_body, record, sample

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The gateway's side (docs/hub.md "The hub on its own") and the third-party packages only it needs.
GATEWAY_SIDE = (
    "gateway.adapters",
    "gateway.mappings",
    "gateway.sync",
    "gateway.push",
    "gateway.config",
    "gateway.spreadsheet",
    "gateway.web",
    "gateway.cli",
    "gateway.scheduler",
    "gateway.service",
    "gateway.store",
    "gateway.api",
    "gateway.demo",
    "gateway.freshness",
)
GATEWAY_PACKAGES = ("paramiko", "pyodbc", "pymysql", "apscheduler", "lxml", "xlrd", "requests")

# Run first in the hub's interpreter: importing any of the above fails, as on a host without them.
BLOCKER = textwrap.dedent(f"""
    import sys
    BLOCKED = {GATEWAY_SIDE + GATEWAY_PACKAGES!r}
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"{{name}} is not part of the hub")
            return None
    sys.meta_path.insert(0, Refuse())
""")


def _loaded(name: str) -> bool:
    # openpyxl (the hub's XLSX exports) probes for lxml itself when it is installed: not our import.
    return any(name == b or name.startswith(b + ".") for b in GATEWAY_SIDE + GATEWAY_PACKAGES if b != "lxml")


def test_the_import_contracts_hold() -> None:
    r = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # Every contract setup.cfg declares (the layering of ../shared/DESIGN.md) is checked and kept.
    declared = (ROOT / "setup.cfg").read_text(encoding="utf-8").count("[importlinter:contract:")
    assert declared >= 7
    assert f"{declared} kept, 0 broken" in r.stdout, r.stdout


def test_importing_the_hub_loads_nothing_of_the_gateway() -> None:
    code = textwrap.dedent("""
        import importlib, json, pkgutil, sys
        import gateway.hub.server, gateway.hub.app, gateway.hub.cli
        import gateway.hub
        for m in pkgutil.walk_packages(gateway.hub.__path__, "gateway.hub."):
            importlib.import_module(m.name)
        print(json.dumps(sorted(sys.modules)))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    modules = json.loads(r.stdout)
    assert "gateway.hub.server" in modules and "gateway.hub.ingest" in modules
    assert [m for m in modules if _loaded(m)] == []


def _hub_alone(hub: LiveHub, *args: str, **kw: object) -> subprocess.CompletedProcess | subprocess.Popen:
    """`gateway-hub --config F ARGS` with the gateway's side unimportable."""
    argv = [
        sys.executable,
        "-c",
        BLOCKER + "from gateway.hub.cli import main; main()",
        "--config",
        str(hub.config_path),
        *args,
    ]
    if kw.pop("background", False):
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(hub.dir / "alone.stderr", "ab"), cwd=ROOT)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, **kw)  # type: ignore[call-overload]


def test_gateway_hub_serves_without_the_gateway_side(hub_factory: Callable[..., LiveHub]) -> None:
    hub = hub_factory()
    hub.stop()  # the same config, database and port, now served by `gateway-hub` alone
    proc = _hub_alone(hub, "run", background=True)
    try:
        hub.wait_ready()
        r = hub.post(
            "/api/v1/batches", batch_body([record("material", sample("material", 1))], batch_id=str(uuid.uuid4()))
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] == "accepted"
        login = requests.get(hub.url + "/ui/accounts/login", timeout=10)
        assert login.status_code == 200 and "登录" in login.text
    finally:
        proc.terminate()
        proc.wait(10)
    verified = _hub_alone(hub, "verify-log")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    added = _hub_alone(hub, "user", "add", "op1", "--role", "operator", "--password-stdin", input="Op-pass-2026-long\n")
    assert added.returncode == 0 and "op1" in added.stdout, added.stdout + added.stderr


def test_gateway_hub_run_listens_where_told(hub_factory: Callable[..., LiveHub]) -> None:
    from gateway.demo.layout import free_port

    hub = hub_factory()
    port = free_port(0)
    proc = _hub_alone(hub, "run", "--listen", f"127.0.0.1:{port}", background=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v1/hub", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, (hub.dir / "alone.stderr").read_text()
                time.sleep(0.05)
        assert requests.get(hub.url + "/api/v1/hub", timeout=5).status_code == 200  # the configured one still serves
    finally:
        proc.terminate()
        proc.wait(10)
    bad = _hub_alone(hub, "run", "--listen", "nowhere")
    assert bad.returncode == 2 and "host:port" in bad.stderr
