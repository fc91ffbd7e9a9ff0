"""Per-record push latency: local API call -> verified hub receipt, over N edits.

    .venv/bin/python bench/push_latency.py [N] [--profile] [--pg=postgresql+psycopg://postgres@127.0.0.1/postgres]

Starts a hub (`gateway hub run`, SQLite, its own process) and the gateway service (admin UI +
local API) on loopback, edits one material row in a department SQLite
database (or, with --pg=ADMIN_URL, in a throwaway PostgreSQL database), calls
POST /api/local/push and times until the answer carrying the hub's verified
receipt arrives. Prints p50/p95/p99 (target: p50 <= 15 ms,
p99 <= 50 ms). --profile runs the edits under cProfile and prints the top
functions by cumulative time.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from gateway.config import load_gateway_config
from gateway.demo.layout import free_port
from gateway.protocol.keys import new_key_pair
from gateway.service.runtime import GatewayService

TOKEN = "bench-token"
MAPPING = """\
record_type = "material"
[fields]
material_id = "wzbm"
material_name = "wzmc"
category_code = "fldm"
unit = "jldw"
reserve_mode = {column = "cbfs", transforms = ["code"]}
"""


class Department:
    """The department's source table: SQLite in the temp folder, or a throwaway PostgreSQL database."""

    def __init__(self, root: Path, rows: int, pg_admin: str | None) -> None:
        from sqlalchemy import create_engine, text

        self.pg_admin, self.dbname = pg_admin, None
        if pg_admin:
            self.dbname = f"gwbench_{uuid.uuid4().hex[:8]}"
            with create_engine(pg_admin, isolation_level="AUTOCOMMIT").connect() as c:
                c.execute(text(f"CREATE DATABASE {self.dbname}"))
            self.url = pg_admin.rsplit("/", 1)[0] + f"/{self.dbname}"
        else:
            self.url = f"sqlite:///{root / 'dept.db'}"
        self.engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        with self.engine.connect() as c:
            c.execute(text("CREATE TABLE wz (wzbm TEXT PRIMARY KEY, wzmc TEXT, fldm TEXT, jldw TEXT, cbfs TEXT)"))
            c.execute(text("INSERT INTO wz VALUES (:k, :n, '1010100', '张', '实物储备')"),
                      [{"k": f"WZ-{i:05d}", "n": f"折叠床{i}"} for i in range(rows)])
        self._update = text("UPDATE wz SET wzmc = :n WHERE wzbm = :k")
        self.conn = self.engine.connect()

    def edit(self, key: str, name: str) -> None:
        self.conn.execute(self._update, {"k": key, "n": name})

    def close(self) -> None:
        from sqlalchemy import create_engine, text

        self.conn.close()
        self.engine.dispose()
        if self.dbname:
            with create_engine(str(self.pg_admin), isolation_level="AUTOCOMMIT").connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)"))


def setup(root: Path, source_url: str) -> tuple[Path, Path]:
    new_key_pair(root / "keys" / "gateway.key", root / "keys" / "gateway.pub")
    new_key_pair(root / "hub" / "hub.key", root / "hub" / "hub.pub")
    (root / "materials.toml").write_text(MAPPING, encoding="utf-8")
    hub_port, gw_port = free_port(0), free_port(0)
    (root / "hub" / "hub.toml").write_text(f"""
[hub]
listen = "127.0.0.1:{hub_port}"
database = "hub.db"
signing_key = "hub.key"
key_id = "hub-1"
[[departments]]
code = "bench"
name = "基准测试部门"
[[departments.keys]]
key_id = "bench-1"
public_key_file = "../keys/gateway.pub"
""", encoding="utf-8")
    (root / "gateway.toml").write_text(f"""
[department]
code = "bench"
name = "基准测试部门"
[hub]
url = "http://127.0.0.1:{hub_port}"
hub_key = "hub/hub.pub"
[keys]
signing_key = "keys/gateway.key"
key_id = "bench-1"
[web]
listen = "127.0.0.1:{gw_port}"
api_token = "{TOKEN}"
[[sources]]
name = "materials"
type = "sql"
record_type = "material"
mapping = "materials.toml"
[sources.settings]
url = "{source_url}"
table = "wz"
key_columns = ["wzbm"]
""", encoding="utf-8")
    return root / "hub" / "hub.toml", root / "gateway.toml"


def start_hub(config: Path, url: str) -> subprocess.Popen[bytes]:
    """The hub in its own process, as in a deployment (no GIL shared with the gateway)."""
    exe = Path(sys.executable).with_name("gateway")
    proc = subprocess.Popen([str(exe), "--log-level", "WARNING", "hub", "--config", str(config), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/v1/hub", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("hub did not start")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1000
    profile = "--profile" in sys.argv
    pg = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--pg=")), None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dept = Department(root, n + 20, pg)
        hub_cfg, gw_cfg = setup(root, dept.url)
        config = load_gateway_config(gw_cfg)
        hub = start_hub(hub_cfg, config.hub.url)
        svc = GatewayService(config, pg_listen=False, run_at_start=False).start()
        session = requests.Session()
        # Loopback: never through a proxy from the environment, and no re-read of it on every call
        # (requests' trust_env cost ~0.3 ms of this process's CPU per edit, counted as the gateway's).
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        url = f"http://{svc.listen}/api/local/push"
        latencies: list[float] = []
        prof = cProfile.Profile() if profile else None
        try:
            for i in range(20):  # warm-up: connections, compiled mapping, first fsyncs
                session.post(url, json={"source": "materials", "key": f"WZ-{i:05d}"}).raise_for_status()
            if prof:
                prof.enable()
            cpu0, hub0 = time.process_time(), proc_cpu(hub.pid)
            for i in range(n):
                key = f"WZ-{i:05d}"
                dept.edit(key, f"折叠床{i}-改{time.time_ns()}")
                t0 = time.perf_counter()
                r = session.post(url, json={"source": "materials", "key": key, "operator": "基准"})
                dt = time.perf_counter() - t0
                body = r.json()
                if r.status_code != 200 or body["status"] != "delivered" or body["receipts"][0]["status"] != "accepted":
                    raise SystemExit(f"edit {key} not delivered: {r.status_code} {body}")
                latencies.append(dt * 1000)
            cpu_gw, cpu_hub = time.process_time() - cpu0, proc_cpu(hub.pid) - hub0
        finally:
            if prof:
                prof.disable()
            svc.stop()
            dept.close()
            hub.terminate()
            hub.wait(10)
        ms = latencies
        kind = "PostgreSQL" if pg else "SQLite"
        print(f"per-record push, local API -> verified receipt, {len(ms)} edits ({kind} source, SQLite hub, loopback)")
        print(f"  p50 {percentile(ms, 50):6.1f} ms   (target <= 15)")
        print(f"  p95 {percentile(ms, 95):6.1f} ms")
        print(f"  p99 {percentile(ms, 99):6.1f} ms   (target <= 50)")
        print(f"  mean {statistics.fmean(ms):5.1f} ms   max {max(ms):6.1f} ms")
        # CPU per edit is steadier than wall time on a shared machine: it is the floor of the latency.
        print(f"  CPU per edit: gateway+client {cpu_gw / n * 1000:.1f} ms, hub {cpu_hub / n * 1000:.1f} ms"
              f"   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
