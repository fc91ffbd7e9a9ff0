"""The push transport reads proxies and the CA bundle from the environment (once, when it starts), as requests would."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from gateway.push.client import push_pending
from tests.fixtures.faultproxy import Faults
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey, tls_files

ONE_TRY = dict(give_up_after=0)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_proxy_from_the_environment_carries_the_push_unless_no_proxy_exempts_the_hub(
    gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any, clean_env: pytest.MonkeyPatch
) -> None:
    proxy = fault_proxy(live_hub.url, Faults()).start()  # forwards what it is sent: a forward proxy too
    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    clean_env.setenv("HTTP_PROXY", proxy.url)
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    assert push_pending(config, engine, **ONE_TRY).accepted == 1
    through = sum(proxy.stats.values())
    assert through >= 1

    clean_env.setenv("NO_PROXY", "127.0.0.1")
    enqueue(engine, [Edit(mkey(2), 1, material(2))])
    assert push_pending(config, engine, **ONE_TRY).accepted == 1
    assert sum(proxy.stats.values()) == through  # straight to the hub this time


def test_without_a_configured_ca_the_environments_ca_bundle_is_trusted(
    gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any, clean_env: pytest.MonkeyPatch
) -> None:
    tls = tls_files(gateway_dir.root / "tls")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls["server_cert"], tls["server_key"])
    front = fault_proxy(live_hub.url, Faults(), tls=ctx).start()  # the hub behind TLS with a private CA
    config = gateway_dir.for_hub(live_hub, url=front.url)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    assert push_pending(config, engine, **ONE_TRY).delivered == 0  # the private CA is not trusted by default

    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls["ca"]))
    assert push_pending(config, engine, **ONE_TRY).accepted == 1
