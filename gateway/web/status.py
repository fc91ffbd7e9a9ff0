"""Read-only queries behind the dashboard: sync runs, outbox backlog, receipts, dead letters, hub health."""

from __future__ import annotations

import time
from typing import Any

import requests
from sqlalchemy import Engine, func, select

from gateway.config import GatewayConfig
from gateway.store import tables as t

# "stale" is not an outbox state: a row the hub answered 过期版本 is `delivered` in the outbox but was not
# taken (the hub holds a newer version), so it is counted and labelled apart (outbox_backlog, history).
STATE_LABELS = {
    "pending": "待推送", "sent": "已发送待回执", "delivered": "已送达", "stale": "过期版本（未采用）", "dead": "被退回",
}
RUN_LABELS = {"running": "运行中", "ok": "成功", "failed": "失败"}
# What a person reads for a source's type and change-detection strategy; a plug-in adapter type
# not listed here is shown by its own name.
SOURCE_TYPE_LABELS = {
    "sql": "数据库表", "odbc": "ODBC 数据源", "folder": "本地文件夹", "sftp": "SFTP 文件投放", "xml": "XML 导出文件",
    "local": "本地录入", "spreadsheet": "表格导入",
}
STRATEGY_LABELS = {
    "cursor": "按更新时间增量读取", "fingerprint": "全量指纹比对", "append": "只追加不删除", "snapshot": "全量快照",
}


def labelled(code: str | None, labels: dict[str, str]) -> str:
    """'数据库表（sql）': the Chinese name with the code the config uses, or the code alone when unnamed."""
    if not code:
        return ""
    return f"{labels[code]}（{code}）" if code in labels else code
RECEIPT_LABELS = {"accepted": "已接收", "rejected": "被拒绝", "duplicate": "重复（已接收）", "stale": "过期版本"}


def schedule_text(every_seconds: int | None, cron: str | None) -> str:
    if cron:
        return f"定时：{cron}"
    if not every_seconds:
        return "仅手动"
    for unit, n in (("天", 86400), ("小时", 3600), ("分钟", 60)):
        if every_seconds % n == 0:
            return f"每 {every_seconds // n} {unit}"
    return f"每 {every_seconds} 秒"


def last_runs(engine: Engine) -> dict[str, dict[str, Any]]:
    """The latest sync run of every source (one indexed lookup per source via max(id))."""
    r = t.sync_runs
    latest = select(func.max(r.c.id)).group_by(r.c.source).scalar_subquery()
    with engine.connect() as c:
        rows = c.execute(select(r).where(r.c.id.in_(latest))).mappings().all()
    return {row["source"]: dict(row) for row in rows}


def last_failures(engine: Engine, limit: int = 10) -> list[dict[str, Any]]:
    r = t.sync_runs
    with engine.connect() as c:
        rows = c.execute(select(r).where(r.c.status == "failed").order_by(r.c.id.desc()).limit(limit)).mappings()
        return [dict(x) for x in rows]


def source_rows(config: GatewayConfig | None, engine: Engine) -> list[dict[str, Any]]:
    runs = last_runs(engine)
    out = []
    names = [s.name for s in config.sources] if config else []
    for name in names + sorted(set(runs) - set(names)):
        sc = next((s for s in config.sources if s.name == name), None) if config else None
        out.append({
            "name": name,
            "type": sc.type if sc else "local" if name == "local" else "?",
            "record_type": sc.record_type if sc else "",
            "schedule": schedule_text(sc.every_seconds, sc.cron) if sc else "—",
            "enabled": sc.enabled if sc else True,
            "strategy": sc.strategy if sc else "",
            "run": runs.get(name),
        })
    return out


def outbox_backlog(engine: Engine) -> dict[str, int]:
    from gateway.push.status import outbox_counts

    with engine.connect() as c:
        counts = {k: 0 for k in STATE_LABELS}
        counts.update(outbox_counts(c))
    return counts


def last_receipt(engine: Engine) -> dict[str, Any] | None:
    b = t.batch_receipts
    with engine.connect() as c:
        row = c.execute(select(b.c.batch_id, b.c.received_at, b.c.log_seq).order_by(b.c.received_at.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def open_dead_letters(engine: Engine) -> int:
    d = t.dead_letters
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(d).where(d.c.resolved_at.is_(None))).scalar_one())


def hub_health(config: GatewayConfig | None, timeout: float = 3.0) -> dict[str, Any]:
    """GET {hub}/api/v1/hub (the hub's unauthenticated info) with a short timeout.

    Also compares the hub's public key with the one this gateway verifies
    receipts against, the most common set-up mistake.
    """
    if config is None or not config.hub.url:
        return {"ok": False, "message": "未配置汇聚平台地址"}
    url = config.hub.url + "/api/v1/hub"
    verify: Any = str(config.hub.ca_file) if config.hub.ca_file else True
    t0 = time.monotonic()
    try:
        resp = requests.get(url, timeout=timeout, verify=verify)
    except requests.RequestException as e:
        kind = "连接超时" if isinstance(e, requests.Timeout) else "无法连接"
        return {"ok": False, "message": f"{kind}：{config.hub.url}", "url": url}
    ms = round((time.monotonic() - t0) * 1000)
    if resp.status_code != 200:
        return {"ok": False, "message": f"汇聚平台返回状态 {resp.status_code}", "url": url, "ms": ms}
    out: dict[str, Any] = {"ok": True, "message": f"可访问（{ms} 毫秒）", "url": url, "ms": ms}
    try:
        info = resp.json()
        mine = config.hub.hub_key.read_text(encoding="ascii").strip() if config.hub.hub_key else None
    except (ValueError, OSError):
        return out
    if mine and info.get("hub_public_key") and info["hub_public_key"] != mine:
        out.update(ok=False, message="可访问，但平台公钥与本机配置的 hub_key 不一致，回执将无法验签")
    return out
