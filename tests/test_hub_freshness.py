"""The hub's freshness numbers equal the gateway's on the same data (issue 16): the demo department, end to end."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from gateway.config import load_gateway_config
from gateway.demo.runner import run_demo
from gateway.demo.sample import DEPARTMENT_CODE
from gateway.freshness import report_for
from gateway.hub.config import load_hub_config
from gateway.hub.ui import stats
from gateway.store import open_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh") / "demo"
    assert run_demo(root, once=True, fresh=True, echo=lambda _line: None) == 0
    return root


def _both(root: Path, now: dt.datetime) -> tuple[dict, dict]:
    config = load_gateway_config(root / "gateway.toml")
    gw_engine = open_store(config.state_path)
    hub_engine = create_engine(load_hub_config(root / "hub" / "hub.toml").database)
    try:
        rep = report_for(config, gw_engine, now=now)
        period = ((now - dt.timedelta(days=90)).date().isoformat(), now.date().isoformat())
        rows = stats.department_status(
            hub_engine, config.freshness_days, period, now=now, warn_days=config.expiry_warn_days
        )
    finally:
        gw_engine.dispose()
        hub_engine.dispose()
    d = next(r for r in rows if r.code == DEPARTMENT_CODE)
    gateway_side = {"records": rep.records, "stale": rep.stale_counts(), "expiring": rep.expiring_counts()}
    hub_side = {"records": d.records, "stale": d.stale_by_type, "expiring": d.expiring}
    return gateway_side, hub_side


@pytest.mark.parametrize("days_on", [0, 45, 200])
def test_hub_and_gateway_freshness_agree_on_the_demo(demo: Path, days_on: int) -> None:
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=days_on)
    gateway_side, hub_side = _both(demo, now)
    assert hub_side == gateway_side
    if days_on == 0:
        # The sample's stock row last counted 130 days ago is stale at the hub too, though it arrived just now;
        # one batch expires within 30 days, one within 90.
        assert gateway_side["stale"] == {"stock": 1}
        assert gateway_side["expiring"] == {"30": 1, "90": 1}
    if days_on == 200:
        assert sum(hub_side["stale"].values()) == hub_side["records"]  # nothing new for 200 days: all stale
