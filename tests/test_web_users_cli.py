"""`gateway user ...` and `gateway hub user ...`: the first accounts, never a default password."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from gateway.accounts.passwords import verify_password
from gateway.cli import cli
from gateway.store import open_store
from gateway.store import tables as t

PW = "Diyige-guanliyuan-1\n"


def test_gateway_user_add_list_passwd_unlock(gateway_dir, live_hub) -> None:  # type: ignore[no-untyped-def]
    gateway_dir.for_hub(live_hub)
    cfg = str(gateway_dir.config_path)
    run = CliRunner().invoke
    r = run(cli, ["--config", cfg, "user", "add", "zhang", "--role", "admin", "--name", "张三", "--password-stdin"], input=PW)
    assert r.exit_code == 0, r.output
    assert "已添加用户 zhang（管理员）" in r.output
    r = run(cli, ["--config", cfg, "user", "add", "li", "--role", "clerk", "--password-stdin"], input="short\n")
    assert r.exit_code != 0 and "至少需要 10 个字符" in r.output
    r = run(cli, ["--config", cfg, "user", "add", "li", "--role", "boss", "--password-stdin"], input=PW)
    assert r.exit_code != 0
    r = run(cli, ["--config", cfg, "user", "passwd", "zhang", "--password-stdin"], input="Xin-de-mima-2026\n")
    assert r.exit_code == 0, r.output
    assert run(cli, ["--config", cfg, "user", "unlock", "zhang"]).exit_code == 0
    assert "zhang\tadmin\t张三" in run(cli, ["--config", cfg, "user", "list"]).output
    engine = open_store(gateway_dir.root / "state" / "gateway.db")
    with engine.connect() as c:
        row = c.execute(select(t.users)).mappings().one()
        acts = [a.action for a in c.execute(select(t.audit))]
    assert row["password_hash"].startswith("scrypt$") and verify_password("Xin-de-mima-2026", row["password_hash"])
    assert acts == ["user.add", "user.password", "user.unlock"]


def test_hub_user_add(live_hub) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli, ["hub", "--config", str(live_hub.config_path), "user", "add", "wang", "--role",
                                 "operator", "--password-stdin"], input=PW)
    assert r.exit_code == 0, r.output
    from gateway.hub.ui_tables import hub_account_store

    assert hub_account_store(live_hub.engine).by_name("wang").role == "operator"
