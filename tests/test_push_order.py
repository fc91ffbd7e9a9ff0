"""Batches in flight together never race a record past the one it refers to: a stock batch is not sent
while the batch with its material and depot is still on its way (the hub would answer 物资编码不存在)."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

from gateway.push.client import push_pending
from tests.fixtures.faultproxy import relay_server, send_head
from tests.fixtures.hub import sample
from tests.fixtures.push import Edit, GatewayDir, enqueue


def slow_relay(upstream: str, slow_if: bytes, delay: float):  # type: ignore[no-untyped-def]
    """Forward every request to `upstream`; hold back those whose body contains `slow_if` by `delay` s."""
    target = urlsplit(upstream)

    def handle(h) -> None:  # type: ignore[no-untyped-def]
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if slow_if in body:
            time.sleep(delay)  # this batch reaches the hub late
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(h.command, h.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        send_head(h, resp.status, resp.getheaders(), len(data))
        h.wfile.write(data)
        conn.close()

    server = relay_server(handle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_stock_batch_waits_for_the_batch_with_its_material(live_hub, gateway_dir: GatewayDir) -> None:
    relay = slow_relay(live_hub.url, b'"type":"material"', 0.8)
    try:
        cfg = gateway_dir.for_hub(live_hub, url=f"http://127.0.0.1:{relay.server_address[1]}", batch_size=10)
        engine = gateway_dir.store()
        # A first batch on its own opens the window (it opens after a receipt); then two go out together.
        warm = [Edit("KU-09", 1, sample("depot", 9, depot_id="KU-09"), "depot", "warm")]
        base = [Edit(f"WZ-{n:04d}", 1, sample("material", n), "material", "base") for n in range(1, 4)]
        base.append(Edit("KU-01", 1, sample("depot", 1), "depot", "base"))
        stock = [Edit(f"WZ-{n:04d}|KU-01|B{n}", 1, sample("stock", n), "stock", "kc") for n in range(1, 4)]
        enqueue(engine, warm + base + stock)  # then materials + depot, then the stock that refers to them
        summary = push_pending(cfg, engine, give_up_after=30)
        assert summary.rejected == 0 and summary.accepted == 8, summary
    finally:
        relay.shutdown()
        relay.server_close()
