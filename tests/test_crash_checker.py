"""The crash checker: seeded kill -9 of the gateway and the hub during sync and push, then the hub against the source.

A PostgreSQL material table is read with the `fingerprint` strategy (a whole-source pass every run) and pushed
to a hub process on PostgreSQL. Each round changes every row's name (and inserts and deletes a few rows), starts
`gateway sync`, and strikes after a seeded delay: mostly the gateway, twice the hub. The source changes once more, then a final `gateway sync` and
`push-pending` must exit 0, and then the hub must hold, key by key, exactly what the source holds:

    lost        source rows the hub does not hold
    duplicated  (key, seq) writes the hub accepted more than once
    stale       hub records whose value differs from the source's, or that the source has deleted

each 0. The figures are printed (pytest -s) for the issue's closing note.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fixtures.push import GatewayDir
from tests.push_checks import hub_accepted_twice, outbox_states

N = 50_000
ROUNDS = 8

MAPPING = """
record_type = "material"

[fields]
material_id = { template = "WZ-{id}" }
material_name = { column = "mc" }
category_code = { constant = "1010100" }
unit = { constant = "张" }
reserve_mode = { constant = "1" }
"""

WZ = sa.MetaData()
wz = sa.Table("crash_wz", WZ, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("mc", sa.String(60)))


def gateway_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from gateway.cli import main; main()", "--config", str(config), "--log-level", "WARNING",
            *args]


def source_names(src: sa.Engine) -> dict[str, str]:
    with src.connect() as c:
        return {f"WZ-{i}": mc for i, mc in c.execute(sa.select(wz.c.id, wz.c.mc))}


def hub_names(hub: Any) -> dict[str, str | None]:
    """key -> material_name the hub holds (None: held as deleted)."""
    from gateway.hub.tables import records

    with hub.engine.connect() as c:
        rows = c.execute(sa.select(records.c.key, records.c.data, records.c.deleted).where(records.c.type == "material"))
        return {k: None if deleted else data["material_name"] for k, data, deleted in rows}


def saved_position(gateway_dir: GatewayDir) -> str | None:
    from gateway.store.tables import source_positions

    with gateway_dir.store().connect() as c:
        return c.execute(sa.select(source_positions.c.position).where(source_positions.c.source == "wz")).scalar()


def killed_mid_pass(gateway_dir: GatewayDir) -> bool:
    """Whether the gateway died inside a read pass (a position saved, the pass not complete), not in its push."""
    state = json.loads(saved_position(gateway_dir) or "{}")
    return not state.get("complete", True) and bool(state.get("adapter"))


def wait_inside_pass(gateway_dir: GatewayDir, proc: subprocess.Popen, before: str | None, limit: float) -> None:
    """Until this run's pass has committed a chunk and not finished (its saved position moved and is
    incomplete): a kill then lands mid-pass however slow or fast the machine is today."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        raw = saved_position(gateway_dir)
        if raw != before and killed_mid_pass(gateway_dir):
            return
        time.sleep(0.02)


def change_source(src: sa.Engine, rnd: random.Random, round_no: int, next_id: int) -> int:
    """Rename every row, delete a few, insert a few; returns the next free id."""
    with src.begin() as c:
        c.execute(wz.update().values(mc=sa.func.concat(f"折叠床-{round_no}-", wz.c.id)))
        ids = c.execute(sa.select(wz.c.id)).scalars().all()
        c.execute(wz.delete().where(wz.c.id.in_(rnd.sample(ids, 20))))
        c.execute(wz.insert(), [{"id": i, "mc": f"折叠床-{round_no}-{i}"} for i in range(next_id, next_id + 30)])
    return next_id + 30


@pytest.mark.slow
def test_seeded_kills_of_gateway_and_hub_leave_the_hub_equal_to_the_source(
    gateway_dir: GatewayDir, hub_factory: Any, pg_url: str
) -> None:
    rnd = random.Random(13)
    hub = hub_factory(database_url=pg_url, process=True)
    src = sa.create_engine(pg_url)
    WZ.create_all(src)
    with src.begin() as c:
        c.execute(wz.insert(), [{"id": i, "mc": f"折叠床-0-{i}"} for i in range(1, N + 1)])
    next_id = N + 1

    gateway_dir.for_hub(hub, batch_size=1000, timeout=20)
    (gateway_dir.root / "material.toml").write_text(MAPPING, encoding="utf-8")
    with gateway_dir.config_path.open("a", encoding="utf-8") as f:
        f.write(f"""
[[sources]]
name = "wz"
type = "sql"
record_type = "material"
mapping = "material.toml"
strategy = "fingerprint"
[sources.settings]
url = "{pg_url}"
table = "crash_wz"
key_columns = ["id"]
chunk_size = 1000
""")
    config, log = gateway_dir.config_path, gateway_dir.root / "runs.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()  # the first load, uninterrupted, times a whole round: kill points spread over it
    first = subprocess.run(gateway_cmd(config, "sync", "wz"), env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    round_seconds = time.monotonic() - t0
    hub_rounds = set(rnd.sample(range(1, ROUNDS), 2))
    # Two gateway kills wait until a pass is under way (then strike within 0.3 s); the rest strike
    # at a random moment of the round, in the pass or in the push.
    mid_pass_rounds = set(rnd.sample(sorted(set(range(1, ROUNDS + 1)) - hub_rounds), 2))
    kills = {"gateway": 0, "hub": 0, "mid_pass": 0}
    for round_no in range(1, ROUNDS + 1):
        next_id = change_source(src, rnd, round_no, next_id)
        before = saved_position(gateway_dir)
        proc = subprocess.Popen(gateway_cmd(config, "sync", "wz", "--push-retry-for", "30"), env=env,
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        if round_no in mid_pass_rounds:
            wait_inside_pass(gateway_dir, proc, before, 3 * round_seconds)
            time.sleep(rnd.uniform(0.0, 0.3))
        else:
            time.sleep(rnd.uniform(0.1, 0.9) * round_seconds)
        if round_no in hub_rounds:
            hub.kill()
            kills["hub"] += 1
            time.sleep(rnd.uniform(0.1, 0.5))
            hub.start()  # the gateway's push meets a dead hub, retries, and carries on
            proc.wait(180)
        elif proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills["gateway"] += 1
            kills["mid_pass"] += killed_mid_pass(gateway_dir)
    assert kills["gateway"] >= 4 and kills["hub"] == 2 and kills["mid_pass"] >= 2, kills

    # The source goes on changing while the gateway is down; then, with no manual step, the next
    # scheduled sync and push must bring the hub up to date.
    change_source(src, rnd, ROUNDS + 1, next_id)

    final = subprocess.run(gateway_cmd(config, "sync", "wz"), env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    drained = subprocess.run(gateway_cmd(config, "push-pending", "--retry-for", "30"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert drained.returncode == 0, drained.stdout[-2000:] + drained.stderr[-2000:]
    assert set(outbox_states(gateway_dir.store())) == {"delivered"}

    want, got = source_names(src), hub_names(hub)
    lost = sorted(k for k in want if k not in got or got[k] is None)
    stale = sorted(k for k in want if got.get(k) not in (None, want[k]))
    stale += sorted(k for k, v in got.items() if k not in want and v is not None)  # deleted at source, live at the hub
    duplicated = hub_accepted_twice(hub)
    print(f"\ncrash checker: a round takes {round_seconds:.1f} s; {kills['gateway']} gateway kills, {kills['hub']} hub kills ({kills['mid_pass']} gateway kills inside a read pass), {len(want)} source rows; "
          f"lost/duplicated/stale = {len(lost)}/{duplicated}/{len(stale)}")
    assert (len(lost), duplicated, len(stale)) == (0, 0, 0), f"lost {lost[:5]}, stale {stale[:5]}"
    src.dispose()
