"""SIGTERM to `gateway run` in the middle of pushing a large outbox loses nothing and sends nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from gateway.hub.tables import record_history, records
from gateway.store import open_store
from gateway.store.tables import outbox
from tests.fixtures.push import Edit, enqueue, material

N = 6000


def _start(cfg: Path, log: Path, *web: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("gateway")
    return subprocess.Popen(
        [str(exe), "--config", str(cfg), "run", *(web or ("--no-web",))],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _started_line(log: Path) -> dict | None:
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    started = [x for x in lines if x.get("msg") == "gateway started"]
    return started[-1] if len(started) == 2 else None


def _states(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return dict(c.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())


@pytest.mark.slow
def test_sigterm_mid_push_then_restart_delivers_everything_exactly_once(service_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = service_env.config()  # no schedule: the run only pushes what is queued
    # Small batches: 60 round trips, so the SIGTERM lands mid-push even when a loaded machine
    # notices the first delivery late (with the default size the whole outbox went in a few).
    cfg.file.write_text(cfg.file.read_text(encoding="utf-8").replace("timeout = 10\n", "timeout = 10\nbatch_size = 100\n", 1),
                        encoding="utf-8")
    engine = open_store(cfg.state_path)
    enqueue(engine, [Edit(f"WZ-{i:06d}", 1, material(i)) for i in range(N)])
    log = tmp_path / "run.log"

    proc = _start(cfg.file, log)
    try:
        service_env.wait(lambda: _states(engine).get("delivered", 0) > 0, timeout=60, poll=0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    states = _states(engine)
    assert sum(states.values()) == N  # nothing lost
    assert 0 < states.get("delivered", 0) < N, f"SIGTERM was not mid-push: {states}"
    assert set(states) <= {"delivered", "pending", "sent"}
    assert '"msg": "gateway stopped"' in log.read_text()

    # The restart serves the admin UI and local API too; its health page shows the drain.
    proc = _start(cfg.file, log, "--listen", "127.0.0.1:0")
    try:
        started = service_env.wait(lambda: _started_line(log), timeout=30)
        health = requests.get(f"http://{started['listen']}/healthz", timeout=10).json()
        assert health["scheduler"]["running"] and health["push_worker"]["alive"] and health["hub"]["ok"]
        service_env.wait(lambda: _states(engine) == {"delivered": N}, timeout=120, poll=0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with service_env.hub.engine.connect() as c:
        held = c.execute(select(func.count()).select_from(records).where(records.c.department == service_env.hub.department)).scalar_one()
        applied = c.execute(select(func.count()).select_from(record_history)).scalar_one()
    assert held == N
    assert applied == N  # each record applied once: a resent batch was answered from its first receipt
    engine.dispose()
