"""kill -9 during a sync repeats work but never loses or duplicates it.

The sync runs in a subprocess that SIGKILLs itself at a seeded point — after
K rows have been read, or inside the K-th outbox write before its commit — and
is then re-run to completion. Its outbox must equal that of an uninterrupted
run over the same source history: the same (record_key, op, seq, version)
rows, none twice.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import open_store
from gateway.store.tables import outbox, sync_runs
from gateway.sync import sync_source
from tests.test_sync_pipeline import apply_churn, kc, seed_source, source_entry, write_config

N = 3000

CRASHING_SYNC = textwrap.dedent(
    """
    import os, signal, sys
    from gateway.adapters.batches import RowBatch
    from gateway.adapters.sql import SqlAdapter
    from gateway.config import load_gateway_config
    from gateway.store import open_store, outbox as store_outbox
    from gateway.sync import sync_source

    config_path, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seen = 0

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "rows":
        # The sync reads whole-source rows through fetch_batches: die once the read reaches row k.
        fetch_batches = SqlAdapter.fetch_batches
        def counting_fetch(self, position, size=2000):
            global seen
            for e in fetch_batches(self, position, size):
                if isinstance(e, RowBatch):
                    seen += len(e)
                    if seen >= k:
                        die()
                yield e
        SqlAdapter.fetch_batches = counting_fetch
    else:
        enqueue = store_outbox.enqueue
        def dying_enqueue(*a, **kw):
            global seen
            ids = enqueue(*a, **kw)
            seen += 1
            if seen == k:
                die()  # outbox rows written, transaction not committed
            return ids
        store_outbox.enqueue = dying_enqueue

    cfg = load_gateway_config(config_path)
    sync_source(cfg, "kc", open_store(cfg.state_path))
    print("completed without being killed")
    """
)


def run_crashing(config: Path, mode: str, k: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-c", CRASHING_SYNC, str(config), mode, str(k)], env=env,
                       capture_output=True, text=True, timeout=120)
    if p.returncode not in (0, -9):
        raise AssertionError(p.stderr)
    return p.returncode


def outbox_set(engine: sa.Engine) -> list[tuple[str, str, int, str]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(outbox.c.record_key, outbox.c.op, outbox.c.seq, outbox.c.version))]


def check_seed(seed: int, pg_url: str, tmp: Path) -> None:
    rnd = random.Random(seed)
    strategy = "cursor" if seed % 2 == 0 else "fingerprint"
    mode = "rows" if seed % 3 else "commit"
    extra = {"reconcile_deletes": True} if strategy == "cursor" else {}
    (tmp / "ref").mkdir()
    (tmp / "crash").mkdir()
    ref_cfg = write_config(tmp / "ref", [source_entry("kc", pg_url, strategy, **extra)])
    crash_cfg = write_config(tmp / "crash", [source_entry("kc", pg_url, strategy, **extra)])
    src = seed_source(pg_url, N)
    ref, crashed = open_store(ref_cfg.state_path), open_store(crash_cfg.state_path)
    kills = 0
    for phase in range(2):
        if phase == 1:
            apply_churn(src, N, seed)
        limit = (N if phase == 0 else 60) if mode == "rows" else (3 if phase == 0 else 2)
        kills += run_crashing(crash_cfg.file, mode, rnd.randint(1, limit)) == -9
        sync_source(crash_cfg, "kc", crashed)  # re-run to completion
        sync_source(ref_cfg, "kc", ref)
    assert kills >= 1, "the seeded point was reached at least once"
    got, want = outbox_set(crashed), outbox_set(ref)
    assert len(got) == len(set(got)), "no record enqueued twice"
    assert sorted(got) == sorted(want)
    with crashed.connect() as c:
        statuses = c.execute(sa.select(sync_runs.c.status)).scalars().all()
    assert statuses.count("interrupted") == kills and "running" not in statuses
    src.dispose()


def test_kill_9_mid_sync_gives_the_same_outbox(pg_url: str, tmp_path: Path) -> None:
    check_seed(0, pg_url, tmp_path)  # cursor strategy, killed inside a transaction


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_ten_seeded_points(seed: int, pg_url: str, tmp_path: Path) -> None:
    check_seed(100 + seed, pg_url, tmp_path)


def latest_quantities(engine: sa.Engine) -> dict[str, float | None]:
    """record_key -> quantity of its latest outbox row (None for a delete): what the hub ends up holding."""
    latest: dict[str, float | None] = {}
    with engine.connect() as c:
        for key, op, data in c.execute(sa.select(outbox.c.record_key, outbox.c.op, outbox.c.data).order_by(outbox.c.id)):
            latest[key] = None if op == "delete" else float(json.loads(data)["quantity"])
    return latest


def set_every_quantity(src: sa.Engine, qty: int) -> None:
    with src.begin() as c:
        c.execute(kc.update().values(sl=f"{qty}箱"))


def test_fingerprint_pass_killed_then_rerun_leaves_no_record_stale(pg_url: str, tmp_path: Path) -> None:
    """The source changes after a killed whole-source pass: the next pass must bring every record up to date.

    Resuming at the killed pass's saved position (chunk 3 of 6) never re-read the first 1,500 rows,
    which had changed meanwhile: they stayed at the killed pass's values while the run said ok.
    """
    cfg = write_config(tmp_path, [source_entry("kc", pg_url, "fingerprint")])
    src = seed_source(pg_url, N)
    store = open_store(cfg.state_path)
    sync_source(cfg, "kc", store)
    set_every_quantity(src, 7)
    assert run_crashing(cfg.file, "rows", 1700) == -9  # after three 500-row chunks were checkpointed
    set_every_quantity(src, 8)
    summary = sync_source(cfg, "kc", store)
    latest = latest_quantities(store)
    assert len(latest) == N
    stale = {k: q for k, q in latest.items() if q != 8.0}
    assert not stale, f"{len(stale)} records stale, e.g. {sorted(stale.items())[:3]}"
    assert any("中断" in n for n in summary.notes), summary.notes  # the operator is told why it read everything
    src.dispose()
