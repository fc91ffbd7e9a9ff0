"""`gateway demo --tiers`: a county hub and a city hub above the demo's township hub, on loopback, so
the levels (docs/hub.md, "Levels") can be watched end to end: the department's records reach the
city with the chain of hubs that accepted them, confidential fields withheld on the way up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, func, select

from gateway.demo.layout import free_port
from gateway.demo.sample import DEPARTMENT_CODE, DEPARTMENT_NAME
from gateway.hub.tables import records
from gateway.protocol.keys import new_key_pair
from gateway.standard.schema import RECORD_TYPES

Echo = Callable[[str], None]
DEFAULT_PORTS = {"county": 8701, "city": 8702}
LABELS = {"township": "乡镇中心", "county": "县级中心", "city": "市级中心"}


@dataclass
class Tier:
    name: str  # county | city
    root: Path
    port: int

    @property
    def config(self) -> Path:
        return self.root / "hub.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.root / "state" / "hub.db"


def _keys(folder: Path, *names: str) -> None:
    for name in names:
        key = folder / "keys" / f"{name}.key"
        if not key.exists():
            new_key_pair(key, key.with_suffix(".pub"))


def _upstream(above: Tier, key_id: str, below_keys: str) -> str:
    return f'''
[upstream]
url = "{above.url}"
key_id = "{key_id}"
signing_key = "{below_keys}/upstream.key"
hub_key = "{above.root}/keys/hub.pub"
poll_interval = 0.2
'''


def write_tiers(root: Path, township_root: Path) -> list[Tier]:
    """Keys and configs of the county and city hubs, and the township hub's [upstream] (its hub.toml is
    written anew every run, so the section is appended each time). Lowest tier first."""
    tiers = [Tier(name, root / name, free_port(DEFAULT_PORTS[name])) for name in ("county", "city")]
    _keys(township_root, "upstream")
    below: tuple[str, Path] = ("township", township_root)
    for i, tier in enumerate(tiers):
        _keys(tier.root, "hub", *(["upstream"] if i < len(tiers) - 1 else []))
        (tier.root / "state").mkdir(parents=True, exist_ok=True)
        text = f'''# 演示{LABELS[tier.name]}配置（gateway demo --tiers 生成）
[hub]
listen = "127.0.0.1:{tier.port}"
database = "state/hub.db"
signing_key = "keys/hub.key"
key_id = "{tier.name}-hub-1"

[report]
office = "{LABELS[tier.name]}（演示）"

[[departments]]
code = "{DEPARTMENT_CODE}"
name = "{DEPARTMENT_NAME}"

[[relays]]
key_id = "{below[0]}-relay"
name = "{LABELS[below[0]]}（演示）"
public_key_file = "{below[1]}/keys/upstream.pub"
departments = ["{DEPARTMENT_CODE}"]
'''
        if i < len(tiers) - 1:
            text += _upstream(tiers[i + 1], f"{tier.name}-relay", "keys")
        tier.config.write_text(text, encoding="utf-8")
        below = (tier.name, tier.root)
    with (township_root / "hub.toml").open("a", encoding="utf-8") as f:
        f.write(_upstream(tiers[0], "township-relay", "keys"))
    return tiers


def report_tiers(township_db: Path, tiers: list[Tier], echo: Echo, timeout: float = 60.0) -> bool:
    """Wait until every level holds what the township holds; print the counts and a record's chain at the city."""
    engines = {name: create_engine(f"sqlite:///{db}")  # each hub made its database when it started
               for name, db in [("township", township_db), *((t.name, t.database) for t in tiers)]}
    r = records.c

    def count(name: str) -> int:
        with engines[name].connect() as conn:
            return int(conn.execute(select(func.count()).select_from(records)).scalar_one())

    try:
        want = count("township")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(count(t.name) != want for t in tiers):
            time.sleep(0.2)
        counts = {name: count(name) for name in engines}
        with engines[tiers[-1].name].connect() as conn:
            material = conn.execute(select(r.key, r.provenance).where(r.type == "material").order_by(r.key).limit(1)).first()
            depot = conn.execute(select(r.key, r.provenance).where(r.type == "depot").order_by(r.key).limit(1)).first()
    finally:
        for engine in engines.values():
            engine.dispose()
    echo("各级中心记录数：" + "，".join(f"{LABELS[n]} {c}" for n, c in counts.items()))
    ok = all(c == want for c in counts.values())
    if material is not None:
        levels = list(LABELS.values())
        chain = " → ".join(f"{levels[i] if i < len(levels) else ''} {h.get('hub', '?')}".strip()
                           for i, h in enumerate((material[1] or {}).get("hubs", [])))
        echo(f"市级中心的 material {material[0]}：来自部门 {DEPARTMENT_CODE}，经 {chain}")
    if depot is not None and (depot[1] or {}).get("withheld"):
        names = "、".join(RECORD_TYPES["depot"][n].label for n in depot[1]["withheld"])
        echo(f"储备库 {depot[0]} 的保密字段未上报：{names}（上级未获授权：[upstream] confidential = false）")
    if not ok:
        echo(f"未完成：{timeout:.0f} 秒内各级中心记录数未一致")
    return ok
