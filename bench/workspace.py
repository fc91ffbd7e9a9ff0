"""The bench's folder: keys, hub.toml, gateway configs and mappings; the hub as a real server in a subprocess.

One hub config registers the benchmark department ``bench00`` (the gateway
under test) and ``ing01`` .. ``ing08`` (the eight load-generating gateways of
the ingest step). Each run gets a fresh hub database, so every full sync is an
initial sync.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from gateway.demo.layout import MAPPINGS as DEMO_MAPPINGS
from gateway.protocol.keys import new_key_pair
from gateway.protocol.suites import DEFAULT_SUITE

REPO = Path(__file__).resolve().parent.parent
DEPARTMENT = "bench00"
INGEST_DEPARTMENTS = tuple(f"ing{i:02d}" for i in range(1, 9))
API_TOKEN = "bench-local-token-9f3a"

MAPPINGS = {
    "materials": """\
record_type = "material"
description = "物资基础信息表 wz_jcxx"
[fields]
material_id = "wzbm"
material_name = "wzmc"
category_code = "fldm"
unit = "jldw"
reserve_mode = {column = "cbfs", transforms = ["code"]}
""",
    "depots": """\
record_type = "depot"
description = "储备库信息表 ck_jbxx"
[fields]
depot_id = "ckbm"
depot_name = "ckmc"
depot_level = {column = "ckjb", transforms = ["code"]}
region_code = "xzqh"
address = "dz"
mgmt_unit_name = "gldw"
contact_name = "fzr"
contact_phone = "lxdh"
""",
    # The bench source has the demo department's kc_mx layout: one stock mapping for both.
    "stock": DEMO_MAPPINGS["stock"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass
class Workspace:
    root: Path
    hub_port: int
    web_port: int
    suite: str = DEFAULT_SUITE  # of every key here (hub's and departments'): `bench/run --suite`

    @property
    def keys(self) -> Path:
        """keys/ for ed25519 (as before the suites), keys-<suite>/ for another suite: both kept across runs."""
        return self.root / ("keys" if self.suite == DEFAULT_SUITE else f"keys-{self.suite}")

    @property
    def hub_config(self) -> Path:
        return self.root / "hub.toml"

    def gateway_config(self, strategy: str = "cursor") -> Path:
        return self.root / f"gateway-{strategy}.toml"

    def state_db(self, strategy: str = "cursor") -> Path:
        return self.root / f"state-{strategy}" / "gateway.db"

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"


def make_workspace(root: Path, source_url: str, suite: str = DEFAULT_SUITE) -> Workspace:
    """Keys of `suite`, mappings and configs under `root` (kept across runs; configs rewritten)."""
    ws = Workspace(root, free_port(), free_port(), suite)
    ws.keys.mkdir(parents=True, exist_ok=True)
    (root / "mappings").mkdir(exist_ok=True)
    for name in ("hub", DEPARTMENT, *INGEST_DEPARTMENTS):
        if not (ws.keys / f"{name}.key").exists():
            new_key_pair(ws.keys / f"{name}.key", ws.keys / f"{name}.pub", suite)
    for name, text in MAPPINGS.items():
        (root / "mappings" / f"{name}.toml").write_text(text, encoding="utf-8")
    src = sqlalchemy_url(source_url)
    for strategy in ("cursor", "fingerprint"):
        ws.gateway_config(strategy).write_text(_gateway_toml(ws, src, strategy), encoding="utf-8")
    return ws


def _gateway_toml(ws: Workspace, src: str, strategy: str) -> str:
    stock_settings = 'cursor_column = "gxsj"\n' if strategy == "cursor" else ""
    return f"""\
[department]
code = "{DEPARTMENT}"
name = "县应急管理局"

[hub]
url = "{ws.hub_url}"
hub_key = "{ws.keys.name}/hub.pub"
timeout = 300

[keys]
signing_key = "{ws.keys.name}/{DEPARTMENT}.key"
key_id = "{DEPARTMENT}-1"
suite = "{ws.suite}"

[state]
path = "state-{strategy}/gateway.db"

[web]
listen = "127.0.0.1:{ws.web_port}"
api_token = "{API_TOKEN}"
secret_key = "bench-secret-key-not-for-production"

[[sources]]
name = "materials"
type = "sql"
record_type = "material"
mapping = "mappings/materials.toml"
strategy = "fingerprint"
[sources.settings]
url = "{src}"
table = "wz_jcxx"
key_columns = ["wzbm"]

[[sources]]
name = "depots"
type = "sql"
record_type = "depot"
mapping = "mappings/depots.toml"
strategy = "fingerprint"
[sources.settings]
url = "{src}"
table = "ck_jbxx"
key_columns = ["ckbm"]

[[sources]]
name = "stock"
type = "sql"
record_type = "stock"
mapping = "mappings/stock.toml"
strategy = "{strategy}"
reconcile_deletes = {"true" if strategy == "cursor" else "false"}
[sources.settings]
url = "{src}"
table = "kc_mx"
key_columns = ["id"]
{stock_settings}"""


def write_hub_config(ws: Workspace, database_url: str) -> Path:
    deps = []
    for code in (DEPARTMENT, *INGEST_DEPARTMENTS):
        deps.append(f"""
[[departments]]
code = "{code}"
name = "部门{code}"
record_types = ["material", "depot", "stock", "agreement", "capacity"]
  [[departments.keys]]
  key_id = "{code}-1"
  public_key_file = "{ws.keys.name}/{code}.pub"
""")
    ws.hub_config.write_text(f"""\
[hub]
listen = "127.0.0.1:{ws.hub_port}"
database = "{sqlalchemy_url(database_url)}"
signing_key = "{ws.keys.name}/hub.key"
key_id = "hub-1"
suite = "{ws.suite}"
clock_window = 600
max_batch_bytes = 16000000
max_in_flight = 16
threads = 8

[attachments]
dir = "attachments"
""" + "".join(deps), encoding="utf-8")
    return ws.hub_config


class HubProcess:
    """`gateway hub --config F run` (waitress) in a subprocess; peak RSS from /proc."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> HubProcess:
        log = open(self.ws.root / "hub.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from gateway.cli import main; main()", "hub", "--config", str(self.ws.hub_config), "run"],
            stdout=log, stderr=log, cwd=self.ws.root, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}; see {self.ws.root / 'hub.log'}")
            try:
                if requests.get(self.ws.hub_url + "/api/v1/hub", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub did not come up in {timeout}s; see {self.ws.root / 'hub.log'}")

    def reset_peak(self) -> None:
        """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
        if self.proc is not None:
            try:
                Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            except OSError:
                pass

    def peak_rss_mb(self) -> float | None:
        if self.proc is None:
            return None
        return proc_peak_rss_mb(self.proc.pid)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the hub process so far."""
        return None if self.proc is None else proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PgCpu:
    """CPU time of the PostgreSQL backends serving the given databases, polled from pg_stat_activity and /proc.

    A poller thread notes each backend's CPU time every `every` seconds, so a
    backend that starts and ends during the run (the gateway's source reader)
    is counted up to its last poll. Backends alive at start count from there.
    """

    def __init__(self, admin_url: str, databases: tuple[str, ...], every: float = 0.25) -> None:
        import threading

        import psycopg

        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.databases, self.every = list(databases), every
        self.base = self._snapshot()
        self.last = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="pg-cpu")
        self._thread.start()

    def _snapshot(self) -> dict[int, float]:
        pids = [r[0] for r in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (self.databases,))]
        return {pid: proc_cpu_seconds(pid) for pid in pids}

    def _poll(self) -> None:
        while not self._stop.wait(self.every):
            for pid, cpu in self._snapshot().items():
                if cpu:
                    self.last[pid] = cpu

    def stop(self) -> float:
        """Stop polling; CPU seconds used by those backends since the start."""
        self._stop.set()
        self._thread.join()
        for pid, cpu in self._snapshot().items():
            if cpu:
                self.last[pid] = cpu
        self.conn.close()
        return sum(max(0.0, cpu - self.base.get(pid, 0.0)) for pid, cpu in self.last.items())


def proc_peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
