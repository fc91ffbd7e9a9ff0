"""`gateway demo`: a sample department, a local hub and the gateway, end to end on embedded defaults."""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.demo import sample
from gateway.demo.files import write_department
from gateway.demo.layout import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_HUB_PORT,
    SOURCE_ORDER,
    DemoLayout,
    free_port,
    port_problem,
    write_configs,
)
from gateway.demo.report import DemoReport, build_report, format_report
from gateway.demo.tiers import LABELS, report_tiers, write_tiers
from gateway.logs import log

LOG = logging.getLogger("gateway.demo")
MARKER = ".gateway-demo"  # only a folder holding this is ever emptied by --fresh
DATA_DONE = ".complete"  # written once all sample files are in place (an interrupted first run redoes them)
ADMIN_USER = "demo-admin"
HUB_OPERATOR = "demo-operator"

Echo = Callable[[str], None]


class DemoError(Exception):
    pass


def prepare_folder(root: Path, fresh: bool) -> bool:
    """Create (or with `fresh`, empty) the demo folder. True when the sample data must be written."""
    marker = root / MARKER
    if root.exists() and any(root.iterdir()) and not marker.exists():
        raise DemoError(f"{root} is not empty and was not made by `gateway demo`; choose another --dir")
    if fresh and marker.exists():
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `gateway demo`; `gateway demo --fresh` may empty this folder\n", encoding="utf-8")
    return not (root / "department" / DATA_DONE).exists()


def _department_paths(root: Path) -> dict[str, Path]:
    d = root / "department"
    return {"database": d / "yjwz.db", "drop": d / "drop", "legacy": d / "legacy"}


def _api_token(root: Path) -> str:
    p = root / "state" / "api_token"
    if p.exists():
        return p.read_text().strip()
    p.parent.mkdir(parents=True, exist_ok=True)
    tok = secrets.token_urlsafe(24)
    p.write_text(tok + "\n")
    p.chmod(0o600)
    return tok


def ensure_admin(engine: Any) -> str:
    """The demo admin account with a fresh random one-time password (printed once by the caller, changed at first login)."""
    from gateway.accounts import AccountStore
    from gateway.accounts.roles import GATEWAY_ROLES
    from gateway.store import tables

    store = AccountStore(engine, tables.users, tables.audit, GATEWAY_ROLES)
    password = secrets.token_urlsafe(12)
    if store.by_name(ADMIN_USER):
        store.set_password(ADMIN_USER, password, actor="demo", one_time=True)
    else:
        store.add(ADMIN_USER, password, "admin", display_name="演示管理员", actor="demo", one_time=True)
    return password


def ensure_hub_operator(hub: Any) -> str | None:
    """A demo operator account in the hub's UI, with a fresh random password; None when the hub has no UI."""
    try:
        from gateway.hub.ui_tables import hub_account_store
    except ImportError:
        return None
    store = hub_account_store(hub.app.extensions["hub"].engine)
    password = secrets.token_urlsafe(12)
    if store.by_name(HUB_OPERATOR):
        store.set_password(HUB_OPERATOR, password, actor="demo", one_time=True)
    else:
        store.add(HUB_OPERATOR, password, "operator", display_name="演示运维人员", actor="demo", one_time=True)
    return password


def sync_all(config: Any, engine: Any, echo: Echo) -> tuple[dict[str, Any], dict[str, str]]:
    """One extract-and-load of every source, in dependency order (materials before stock).

    Returns (summary per source, error per source that failed).
    """
    from gateway.sync import sync_source

    out: dict[str, Any] = {}
    failed: dict[str, str] = {}
    names = [n for n in SOURCE_ORDER if any(s.name == n for s in config.sources)]
    names += [s.name for s in config.sources if s.name not in names]
    for name in names:
        try:
            out[name] = sync_source(config, name, engine, operator="demo")
        except Exception as e:  # report the source and go on with the others
            log(LOG, logging.ERROR, "demo sync failed", source=name, error=str(e))
            echo(f"数据源 {name} 同步失败：{e}")
            failed[name] = str(e)
    return out, failed


def run_cycle(config: Any, engine: Any, echo: Echo, give_up_after: float = 60.0) -> DemoReport:
    """Extract-and-load every source, push until the outbox is drained, and report from the store."""
    from gateway.push.client import push_pending

    summaries, failed = sync_all(config, engine, echo)
    push_pending(config, engine, give_up_after=give_up_after, lock_wait=30.0)
    report = build_report(engine, [(s.name, s.record_type) for s in config.sources], summaries)
    report.failed_sources = failed
    return report


def echo_freshness(config: Any, engine: Any, echo: Echo) -> None:
    """What the daily freshness check would report (`gateway freshness` prints the same)."""
    from gateway.freshness import report_for

    rep = report_for(config, engine)
    echo(f"数据新鲜度：超期未更新/未核查 {len(rep.stale)} 条，临近或已过有效期的库存 {len(rep.expiring)} 条")
    for r in rep.stale[:10]:
        echo(f"  超期  {r.record_type} {r.record_key}：{r.message}")
    for e in rep.expiring[:10]:
        echo(f"  效期  {e.record_key}：{e.message}")
    echo("")


def run_demo(
    root: Path, *, once: bool, fresh: bool, echo: Echo, stop: threading.Event | None = None,
    port: int | None = None, hub_port: int | None = None, tiers: bool = False,
) -> int:
    """The whole demo. Returns the exit code: 0 when every valid record was delivered with a verified receipt.

    `port` / `hub_port` fix the admin UI's and the hub's ports (refused when taken); by default the
    usual ports are used when free, else any free one."""
    from gateway.config import load_gateway_config
    from gateway.demo.hub_server import HubServer
    from gateway.store import open_store

    for asked in (port, hub_port):
        if asked is not None and (problem := port_problem(asked)):
            raise DemoError(problem)
    root = root.resolve()
    first = prepare_folder(root, fresh)
    if first:
        write_department(root, sample.build())
        (root / "department" / DATA_DONE).write_text("sample data complete\n", encoding="utf-8")
        echo(f"示例部门数据已生成：{root / 'department'}")
    else:
        echo(f"沿用已有演示目录 {root}（--fresh 可重新生成）")
    layout = DemoLayout(
        root,
        hub_port if hub_port is not None else free_port(DEFAULT_HUB_PORT),
        port if port is not None else free_port(DEFAULT_GATEWAY_PORT),
    )
    write_configs(layout, _department_paths(root), _api_token(root))
    config = load_gateway_config(layout.gateway_config)
    levels = write_tiers(root, layout.hub_config.parent) if tiers else []

    uppers = [HubServer(t.config).start() for t in reversed(levels)]  # the city first: each forwards to the one above
    hub = HubServer(layout.hub_config).start()
    engine = open_store(config.state_path)
    service = None
    try:
        password = ensure_admin(engine)
        report = run_cycle(config, engine, echo)
        echo("")
        echo(format_report(report))
        echo("")
        echo_freshness(config, engine, echo)
        if once:
            # The sample holds a known number of bad rows; any other rejection
            # (an unreadable file, say) means valid records did not arrive.
            unexpected = report.gateway_rejected - len(sample.build().expected_rejections)
            ok = report.complete and unexpected == 0
            if ok and levels:
                echo("")
                ok = report_tiers(layout.hub_config.parent / "state" / "hub.db", levels, echo)
            if ok:
                echo("全部有效记录均已送达并取得已验证的中心回执。" + ("各级中心均已收到。" if levels else ""))
            else:
                echo(f"未完成：{len(report.failed_sources)} 个数据源同步失败，{report.waiting} 条记录尚未取得回执，"
                     f"{report.hub_rejected} 条被中心拒收，{max(unexpected, 0)} 条意外的校验问题。")
            return 0 if ok else 1
        from gateway.service.runtime import GatewayService

        service = GatewayService(config, engine, listen=f"127.0.0.1:{layout.gateway_port}", run_at_start=False).start()
        echo(f"前置机管理界面：{layout.gateway_url}/   用户 {ADMIN_USER}  一次性密码 {password}（仅显示这一次，首次登录后须修改）")
        hub_password = ensure_hub_operator(hub)
        if hub_password:
            echo(f"乡镇中心界面：  {layout.hub_url}/ui/   用户 {HUB_OPERATOR}  一次性密码 {hub_password}（仅显示这一次，首次登录后须修改）")
        else:
            echo(f"乡镇中心：      {layout.hub_url}/")
        echo(f"本地接口：curl -H 'Authorization: Bearer {config.web.api_token}' -H 'Content-Type: application/json' "
             f"-d '{{\"source\":\"materials\",\"key\":\"WZ-0001\"}}' {layout.gateway_url}/api/local/push")
        for t in levels:
            echo(f"{LABELS[t.name]}：      {t.url}/   配置 {t.config}")
        echo(f"配置：{layout.gateway_config}  {layout.hub_config}")
        echo("按计划继续同步中；按 Ctrl-C 退出。")
        if stop is not None:
            stop.wait()
        else:
            _wait_for_interrupt()
        return 0
    finally:
        if service is not None:
            service.stop()
        hub.stop()
        for upper in uppers:
            upper.stop()
        engine.dispose()


def _wait_for_interrupt() -> None:
    ev = threading.Event()
    import signal

    old = {s: signal.signal(s, lambda *_: ev.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not ev.wait(1.0):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
