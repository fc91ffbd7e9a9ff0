"""Several hub worker processes behind one address over one PostgreSQL database (docs/hub.md "Several workers").

Three `gateway-hub run --listen` processes share one config and one database, started together on an
empty database; six departments push concurrently to all of them, each batch delivered twice at once
to two different workers (a gateway retrying through the proxy). Every batch is stored once, no
record twice, the receipt log's chain is whole and every receipt verifies and lies on it.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, func, select, text

from gateway.demo.layout import free_port
from gateway.hub import tables
from gateway.hub.config import HubConfig
from gateway.hub.ui.views import _secret_key
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.receipts import RECEIPT_HEADER, verify_receipt
from gateway.protocol.signing import sign_request
from tests.fixtures.hub import LiveHub, batch_body, record, sample

BATCHES = "/api/v1/batches"
WORKERS = 3
BATCHES_PER_DEPARTMENT = 12
RECORDS_PER_BATCH = 25


@dataclass
class Worker:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_workers(hub: LiveHub, n: int) -> list[Worker]:
    """n `gateway-hub --config F run --listen 127.0.0.1:PORT` processes, started at once, then waited for."""
    workers = []
    for i in range(n):
        port = free_port(0)
        argv = [
            sys.executable,
            "-c",
            "from gateway.hub.cli import main; main()",
            "--config",
            str(hub.config_path),
            "run",
            "--listen",
            f"127.0.0.1:{port}",
        ]
        stderr = open(hub.dir / f"worker{i}.stderr", "ab")
        workers.append(Worker(port, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)))
    deadline = time.monotonic() + 60
    for i, w in enumerate(workers):
        while True:
            if w.process.poll() is not None:
                raise AssertionError(
                    f"worker {i} exited {w.process.returncode}: " + (hub.dir / f"worker{i}.stderr").read_text()[-3000:]
                )
            try:
                if requests.get(w.url + "/api/v1/hub", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"worker {i} did not come up"
            time.sleep(0.05)
    return workers


@pytest.fixture
def workers(hub_factory: Callable[..., LiveHub], pg_url: str) -> Iterator[tuple[LiveHub, list[Worker]]]:
    hub = hub_factory(pg_url)  # writes the config and keys; its own thread server is stopped below
    hub.stop()
    hub.engine.dispose()
    # An empty database again, so the workers migrate it and seed the registry all at the same moment.
    wipe = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with wipe.connect() as c:
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    wipe.dispose()
    (hub.dir / "ui_secret").unlink()  # and no operators' session key yet: the workers make one together
    started = _start_workers(hub, WORKERS)
    try:
        yield hub, started
    finally:
        for w in started:
            if w.process.poll() is None:
                w.process.terminate()
        for w in started:
            w.process.wait(20)


def _signed(body: bytes, key: Ed25519PrivateKey, key_id: str) -> dict[str, str]:
    return {
        "Protocol-Version": "1",
        "Content-Type": "application/json",
        **sign_request("POST", BATCHES, body, key, key_id),
    }


@pytest.mark.slow
def test_workers_on_one_database_store_each_batch_once_on_one_chain(workers: tuple[LiveHub, list[Worker]]) -> None:
    hub, ws = workers
    # Departments registered while the workers run: each worker's registry cache must see them.
    departments = [(hub.department, hub.key, hub.key_id), hub.other]
    departments += [(f"dw{i}", *hub.add_department(f"dw{i}", ["material"])) for i in range(4)]
    answers: list[tuple[str, int, bytes, str]] = []  # (batch_id, status, receipt body, signature)
    errors: list[str] = []
    lock = threading.Lock()

    def deliver(
        session: requests.Session, url: str, batch_id: str, body: bytes, key: Ed25519PrivateKey, key_id: str
    ) -> None:
        r = session.post(url + BATCHES, data=body, headers=_signed(body, key, key_id), timeout=120)
        with lock:
            if r.status_code != 200:
                errors.append(f"{url} {batch_id}: {r.status_code} {r.text[:300]}")
            answers.append((batch_id, r.status_code, r.content, r.headers.get(RECEIPT_HEADER, "")))

    def gateway(d: int) -> None:
        code, key, key_id = departments[d]
        with requests.Session() as first, requests.Session() as second:
            for b in range(BATCHES_PER_DEPARTMENT):
                recs = [
                    record("material", sample("material", d * 10_000 + b * 100 + i), department=code)
                    for i in range(RECORDS_PER_BATCH)
                ]
                batch_id = str(uuid.uuid4())
                body = batch_body(recs, department=code, batch_id=batch_id)
                # The same batch twice at once through two workers (a retry after a lost answer),
                # each request signed anew as a retrying gateway does.
                a, z = ws[(d + b) % len(ws)], ws[(d + b + 1) % len(ws)]
                again = threading.Thread(target=deliver, args=(second, z.url, batch_id, body, key, key_id))
                again.start()
                deliver(first, a.url, batch_id, body, key, key_id)
                again.join()

    threads = [threading.Thread(target=gateway, args=(d,)) for d in range(len(departments))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    batches = len(departments) * BATCHES_PER_DEPARTMENT
    total = batches * RECORDS_PER_BATCH
    hub_public = public_key_from_text(hub.hub_public_key)
    receipts: dict[str, dict] = {}
    for batch_id, _status, body, signature in answers:
        doc = verify_receipt(body, signature, hub_public)  # every answer is a receipt signed by the hub key
        # Both deliveries of a batch got the one receipt it was stored with.
        assert receipts.setdefault(batch_id, doc) == doc
    assert len(receipts) == batches
    statuses = [r["status"] for doc in receipts.values() for r in doc["results"]]
    assert statuses == ["accepted"] * total
    log_seqs = sorted(doc["log_seq"] for doc in receipts.values())
    assert len(set(log_seqs)) == batches  # one log entry per batch, none shared

    with hub.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(tables.batches)).scalar() == batches
        assert c.execute(select(func.count()).select_from(tables.records)).scalar() == total
        hub_seqs = [r[0] for r in c.execute(select(tables.records.c.hub_seq).order_by(tables.records.c.hub_seq))]
        entries = c.execute(select(func.count()).select_from(tables.receipt_log)).scalar()
    assert len(set(hub_seqs)) == total  # no record stored twice, each with its own sequence number
    assert entries == batches  # nothing refused, nothing logged twice

    # verify-log over the whole chain, holding it to every receipt the gateways got.
    heads = hub.dir / "heads.json"
    heads.write_bytes(orjson.dumps([{"log_seq": d["log_seq"], "log_head": d["log_head"]} for d in receipts.values()]))
    v = subprocess.run(
        [
            sys.executable,
            "-c",
            "from gateway.hub.cli import main; main()",
            "--config",
            str(hub.config_path),
            "verify-log",
            "--heads",
            str(heads),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert v.returncode == 0, v.stdout + v.stderr
    assert f"receipt log intact: {batches} entries, head {batches} " in v.stdout, v.stdout


def test_a_nonce_used_at_one_worker_is_a_replay_at_another(workers: tuple[LiveHub, list[Worker]]) -> None:
    hub, ws = workers
    body = batch_body([record("material", sample("material", 1))], batch_id=str(uuid.uuid4()))
    headers = _signed(body, hub.key, hub.key_id)
    assert requests.post(ws[0].url + BATCHES, data=body, headers=headers, timeout=60).status_code == 200
    again = requests.post(ws[1].url + BATCHES, data=body, headers=headers, timeout=60)
    assert again.status_code == 401 and again.json()["error"] == "replay"


def test_a_key_revoked_through_one_worker_is_refused_by_all(workers: tuple[LiveHub, list[Worker]]) -> None:
    hub, ws = workers
    key, key_id = hub.add_department("dwx", ["material"])
    for n, w in enumerate(ws):
        body = batch_body([record("material", sample("material", n + 1), department="dwx")], "dwx")
        assert (
            requests.post(w.url + BATCHES, data=body, headers=_signed(body, key, key_id), timeout=60).status_code == 200
        )
    from gateway.hub import registry

    with hub.engine.begin() as c:
        registry.revoke_key(c, key_id)
    for n, w in enumerate(ws):
        body = batch_body([record("material", sample("material", n + 10), department="dwx")], "dwx")
        r = requests.post(w.url + BATCHES, data=body, headers=_signed(body, key, key_id), timeout=60)
        assert r.status_code == 403 and r.json()["error"] == "key_revoked"


def test_workers_share_one_operator_session(workers: tuple[LiveHub, list[Worker]], tmp_path: Path) -> None:
    """Behind a proxy without sticky sessions, a login at one worker holds at the others."""
    hub, ws = workers
    from gateway.hub.ui_tables import hub_account_store

    hub_account_store(hub.engine).add("op", "Zhihui-2026-chang-mima", "operator", "", actor="test")
    s = requests.Session()
    page = s.get(ws[0].url + "/ui/accounts/login", timeout=10)
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = s.post(
        ws[0].url + "/ui/accounts/login",
        data={"username": "op", "password": "Zhihui-2026-chang-mima", "csrf_token": token},
        timeout=10,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.text[:500]
    for w in ws[1:]:
        r = s.get(w.url + "/ui/receipts", timeout=10, allow_redirects=False)
        assert r.status_code == 200, (w.url, r.status_code, r.headers.get("Location"))


def _ui_key(attachments: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    try:
        out.put(_secret_key(SimpleNamespace(config=HubConfig(file=None, attachments_dir=Path(attachments)))))
    except Exception as e:  # a worker that dies at start-up
        out.put(f"failed: {e!r}")


@pytest.mark.slow
def test_workers_starting_together_make_one_ui_key(tmp_path: Path) -> None:
    """Eight workers at once, forty times: one key each time, whole, that every worker uses (the old
    exists-then-create lost about one round in seven: a worker died on FileExistsError or read "")."""
    ctx = multiprocessing.get_context("fork")  # fork: the processes reach the barrier within microseconds
    bad = []
    for r in range(40):
        n, base = 8, tmp_path / str(r)
        barrier, out = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_ui_key, args=(str(base / "attachments"), barrier, out)) for _ in range(n)]
        for p in procs:
            p.start()
        keys = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        if len(set(keys)) != 1 or len(keys[0]) < 40 or (base / "ui_secret").read_text().strip() != keys[0]:
            bad.append((r, keys))
        assert [f.name for f in base.iterdir()] == ["ui_secret"]  # no private copy left behind
    assert bad == []
