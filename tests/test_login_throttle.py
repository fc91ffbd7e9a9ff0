"""Login throttling that one attacker cannot turn into a lock-out of others (issue 13 item 6).

The real admin UI and hub UI through Flask's test client (REMOTE_ADDR and
X-Forwarded-For set per client), the account store with a controllable clock
for the delays, and a hub served by waitress behind a "proxy" for the header.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.accounts import AccountStore, LoginRefused
from gateway.accounts.forwarded import TrustedProxies
from gateway.accounts.roles import GATEWAY_ROLES
from gateway.accounts.throttle import address_key
from gateway.config import ConfigError
from gateway.store import tables as t
from gateway.web import create_app
from tests.fixtures.hub import LiveHub
from tests.fixtures.web import PASSWORD, login

ATTACKER, OWNER, PROXY = "203.0.113.66", "198.51.100.7", "127.0.0.1"


def _audit(engine, action: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return [
            dict(r)
            for r in c.execute(select(t.audit).where(t.audit.c.action == action).order_by(t.audit.c.id)).mappings()
        ]


def client(app: Flask, peer: str, forwarded_for: str | None = None) -> FlaskClient:
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = peer
    if forwarded_for is not None:
        c.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return c


def app_with(gw_engine, proxies: list[str] | None = None) -> Flask:  # type: ignore[no-untyped-def]
    cfg: dict[str, Any] = {"TESTING": True, "SECRET_KEY": "k"}
    if proxies is not None:
        cfg["TRUSTED_PROXIES"] = proxies
    app = create_app(engine=gw_engine, test_config=cfg)
    app.extensions["accounts_ui"].store.add("wanglei", PASSWORD, "clerk")
    return app


def test_fifty_failures_from_one_address_do_not_stop_the_owner_elsewhere(gw_engine) -> None:  # type: ignore[no-untyped-def]
    app = app_with(gw_engine)
    attacker = client(app, ATTACKER)
    statuses = [login(attacker, "wanglei", f"guess-{i}-guess").status_code for i in range(50)]
    assert statuses == [401] * 5 + [429] * 45  # 5 checked, then slowed: not even checked
    r = login(attacker, "wanglei", PASSWORD)
    assert r.status_code == 429 and "该账户从此地址登录失败次数过多，请 30 秒后再试" in r.get_data(as_text=True)
    assert login(client(app, OWNER), "wanglei").status_code == 302
    throttled = _audit(gw_engine, "login.throttled")
    assert len(throttled) == 46 and {(a["target"], a["remote_addr"]) for a in throttled} == {("wanglei", ATTACKER)}
    assert [a["remote_addr"] for a in _audit(gw_engine, "login.ok")] == [OWNER]


def test_behind_a_trusted_proxy_each_forwarded_client_counts_alone(gw_engine) -> None:  # type: ignore[no-untyped-def]
    app = app_with(gw_engine, [PROXY])
    for i in range(50):
        # The attacker writes what it likes on the left; the proxy appends the address it saw.
        login(client(app, PROXY, f"10.0.{i}.1, {ATTACKER}"), "wanglei", "guess-guess-1")
    assert login(client(app, PROXY, f"10.1.1.1, {ATTACKER}"), "wanglei").status_code == 429  # spoofing did not help
    assert login(client(app, PROXY, OWNER), "wanglei").status_code == 302
    failed = _audit(gw_engine, "login.failed")
    assert len(failed) == 5 and {a["remote_addr"] for a in failed} == {ATTACKER}
    assert json.loads(failed[0]["after"])["via"] == PROXY
    ok = _audit(gw_engine, "login.ok")
    assert [(a["remote_addr"], json.loads(a["after"])["via"]) for a in ok] == [(OWNER, PROXY)]


def test_forwarded_header_from_an_untrusted_peer_is_ignored(gw_engine) -> None:  # type: ignore[no-untyped-def]
    app = app_with(gw_engine, ["10.0.0.1"])
    statuses = [login(client(app, ATTACKER, f"192.0.2.{i}"), "wanglei", "guess-guess-1").status_code for i in range(10)]
    assert statuses == [401] * 5 + [429] * 5  # a fresh forged address each time changed nothing
    assert {a["remote_addr"] for a in _audit(gw_engine, "login.failed")} == {ATTACKER}
    # Without any trusted proxy configured the header is ignored too.
    plain = app_with_user(gw_engine)
    assert plain.extensions["accounts_ui"].trusted_proxies.client(ATTACKER, OWNER) == (ATTACKER, None)


def app_with_user(gw_engine) -> Flask:  # type: ignore[no-untyped-def]
    return create_app(engine=gw_engine, test_config={"TESTING": True, "SECRET_KEY": "k"})


def test_delays_double_per_failure_and_end_with_the_window(gw_engine) -> None:  # type: ignore[no-untyped-def]
    store = AccountStore(gw_engine, t.users, t.audit, GATEWAY_ROLES)
    store.add("wanglei", PASSWORD, "clerk")
    now = [1000.0]
    store.throttle.clock = lambda: now[0]

    def attempt(password: str = "guess-guess-1", addr: str = ATTACKER) -> str:
        try:
            store.authenticate("wanglei", password, addr)
        except LoginRefused as e:
            return f"{e.retry_after}" if e.retry_after is not None else "wrong"
        return "ok"

    assert [attempt() for _ in range(5)] == ["wrong"] * 5
    waits = []
    for _ in range(4):
        waits.append(int(attempt()))
        now[0] += waits[-1]
        assert attempt() == "wrong"
    assert waits == [30, 60, 120, 240]  # doubling with each failure
    assert attempt(PASSWORD) == "480"
    # Hammering once a second for an hour: few guesses are ever checked (ASVS V2.2.1: < 100 an hour).
    checked = 0
    for _ in range(3600):
        now[0] += 1
        checked += attempt() == "wrong"
    assert checked <= 40, checked
    now[0] += 900  # failures older than the window (lockout_minutes) are forgotten
    assert attempt(PASSWORD) == "ok"
    # IPv6: one /64 is one address, so rotating within it does not escape the delay.
    for i in range(5):
        attempt(addr=f"2001:db8:1:2::{i + 1}")
    assert attempt(PASSWORD, "2001:db8:1:2::ffff").isdigit() and attempt(PASSWORD, "2001:db8:1:3::1") == "ok"
    assert address_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64" and address_key("::ffff:10.0.0.1") == "10.0.0.1"


def test_many_addresses_hold_the_account_for_new_addresses_only(gw_engine) -> None:  # type: ignore[no-untyped-def]
    store = AccountStore(gw_engine, t.users, t.audit, GATEWAY_ROLES, account_limit=10)
    store.add("wanglei", PASSWORD, "clerk")
    assert store.authenticate("wanglei", PASSWORD, OWNER).username == "wanglei"  # the owner's usual address
    for i in range(10):  # a distributed attack: each address far below its own delay
        with pytest.raises(LoginRefused, match="用户名或密码错误"):
            store.authenticate("wanglei", "guess-guess-1", f"10.7.0.{i}")
    with pytest.raises(LoginRefused, match="暂不接受来自新地址的登录") as e:
        store.authenticate("wanglei", PASSWORD, "10.8.0.1")
    assert e.value.retry_after and e.value.retry_after <= 3600
    assert store.authenticate("wanglei", PASSWORD, OWNER).username == "wanglei"
    # After a restart the known addresses come back from the audit log.
    again = AccountStore(gw_engine, t.users, t.audit, GATEWAY_ROLES, account_limit=1)
    with pytest.raises(LoginRefused):
        again.authenticate("wanglei", "guess-guess-1", "10.7.9.9")
    assert again.authenticate("wanglei", PASSWORD, OWNER).username == "wanglei"
    with pytest.raises(LoginRefused, match="暂不接受"):
        again.authenticate("wanglei", PASSWORD, "10.8.0.2")
    rules = [json.loads(a["after"])["rule"] for a in _audit(gw_engine, "login.throttled")]
    assert rules == ["account", "account"]


def test_right_most_untrusted_forwarded_address() -> None:
    p = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8"])
    assert p.client("127.0.0.1", "1.2.3.4, 198.51.100.7, 10.0.0.5") == ("198.51.100.7", "127.0.0.1")
    assert p.client("10.1.1.1", "[2001:db8::1]:5555") == ("2001:db8::1", "10.1.1.1")
    assert p.client("127.0.0.1", "10.0.0.9") == ("10.0.0.9", "127.0.0.1")  # every hop trusted
    assert p.client("127.0.0.1", "not-an-address") == ("127.0.0.1", "127.0.0.1")  # never a made-up name
    assert p.client("127.0.0.1", None) == ("127.0.0.1", None)
    assert p.client("192.0.2.1", "198.51.100.7") == ("192.0.2.1", None)
    with pytest.raises(ValueError, match="not an IP address"):
        TrustedProxies.parse(["proxy.example"])


def test_trusted_proxies_setting_is_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.hub.config import hub_config_from_dict

    with pytest.raises(ConfigError) as e:
        hub_config_from_dict(
            {"hub": {"signing_key": "k", "key_id": "hub-1", "trusted_proxies": ["10.0.0.1", "nginx", 5]}}, tmp_path
        )
    assert "hub.trusted_proxies[1]: 'nginx' is not an IP address" in str(e.value)
    assert "hub.trusted_proxies[2]" in str(e.value)
    from gateway.config import load_gateway_config

    (tmp_path / "k.key").write_text("x")
    (tmp_path / "g.toml").write_text(
        '[department]\ncode = "d"\nname = "部门"\n[hub]\nurl = "http://127.0.0.1:1"\n'
        '[keys]\nsigning_key = "k.key"\nkey_id = "k1"\n[web]\ntrusted_proxies = ["10.0.0.0/8", "10.0.0.300"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as e:
        load_gateway_config(tmp_path / "g.toml")
    assert "web.trusted_proxies[1]: '10.0.0.300' is not an IP address" in str(e.value)


def test_hub_behind_a_trusted_proxy_over_real_http(live_hub: LiveHub) -> None:
    """Waitress must hand X-Forwarded-For to the app when [hub] trusted_proxies is set."""
    from gateway.hub.app import create_app as hub_app
    from gateway.hub.config import load_hub_config
    from gateway.hub.server import make_server
    from gateway.hub.ui_tables import hub_account_store

    hub_account_store(live_hub.engine).add("op", PASSWORD, "operator")
    app = hub_app(dataclasses.replace(load_hub_config(live_hub.config_path), trusted_proxies=(PROXY,)))
    server = make_server(app, "127.0.0.1", 0, threads=2)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        base = f"http://127.0.0.1:{server.effective_port}/ui/accounts/login"

        def post(forwarded: str, password: str) -> requests.Response:
            s = requests.Session()
            tok = re.search(r'name="csrf_token" value="([^"]+)"', s.get(base, timeout=10).text).group(1)  # type: ignore[union-attr]
            return s.post(
                base,
                data={"username": "op", "password": password, "csrf_token": tok},
                headers={"X-Forwarded-For": forwarded},
                allow_redirects=False,
                timeout=10,
            )

        assert [post(ATTACKER, "guess-guess-1").status_code for _ in range(6)] == [401] * 5 + [429]
        assert post(OWNER, PASSWORD).status_code == 302
    finally:
        server.close()
    rows = hub_account_store(live_hub.engine).audit_page(actor="op")
    assert [(a["action"], a["remote_addr"]) for a in rows[:2]] == [("login.ok", OWNER), ("login.throttled", ATTACKER)]


def test_gateway_service_behind_a_trusted_proxy_over_real_http(service_env) -> None:  # type: ignore[no-untyped-def]
    """`gateway run` with web.trusted_proxies: waitress passes X-Forwarded-For, the login throttle uses it."""
    from gateway.accounts.roles import GATEWAY_ROLES
    from gateway.service.runtime import GatewayService
    from gateway.store import open_store

    cfg = service_env.config()
    cfg.web.trusted_proxies = (PROXY,)
    engine = open_store(cfg.state_path)
    AccountStore(engine, t.users, t.audit, GATEWAY_ROLES).add("wanglei", PASSWORD, "clerk")
    svc = GatewayService(cfg, pg_listen=False, run_at_start=False).start()
    try:
        base = f"http://{svc.listen}/accounts/login"

        def post(forwarded: str, password: str) -> int:
            s = requests.Session()
            page = s.get(base, timeout=10).text
            tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            r = s.post(
                base,
                data={"username": "wanglei", "password": password, "csrf_token": tok},
                headers={"X-Forwarded-For": forwarded},
                allow_redirects=False,
                timeout=10,
            )
            return r.status_code

        assert [post(ATTACKER, "guess-guess-1") for _ in range(8)] == [401] * 5 + [429] * 3
        assert post(OWNER, PASSWORD) == 302
    finally:
        svc.stop()
    assert [a["remote_addr"] for a in _audit(engine, "login.ok")] == [OWNER]
    assert {a["remote_addr"] for a in _audit(engine, "login.throttled")} == {ATTACKER}
    engine.dispose()
