"""What the push transport does with answers other than a plain receipt: as requests would.

A small front server stands between the gateway and a real hub (as a load
balancer or reverse proxy might) and sets a cookie, redirects, compresses the
receipt, stalls or hangs up; the batch ends delivered, or `sent` with the
failure sorted as before.
"""

from __future__ import annotations

import gzip
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from gateway.push.client import PushClient, push_pending
from gateway.store.tables import outbox_batches
from tests.fixtures.faultproxy import HOP_BY_HOP, relay_server, send_head
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey
from tests.push_checks import outbox_states

ONE_TRY = dict(give_up_after=0)
Answer = tuple[int, list[tuple[str, str]], bytes]


class Front:
    """Relays to the hub; `shape(n, path, answer)` may change the n-th answer (None: hang up instead).

    `redirect_to`: answer every batch POST with 307 to this base URL instead, relaying nothing.
    """

    def __init__(self, upstream: str, shape: Callable[[int, str, Answer], Answer | None], redirect_to: str | None = None) -> None:
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.shape = shape
        self.redirect_to = redirect_to
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers of each request
        self.server = relay_server(self.handle)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        n = len(self.seen)
        self.seen.append((h.command, h.path, dict(h.headers.items())))
        if self.redirect_to is not None and h.path.startswith("/api/v1/batches"):
            self.send(h, (307, [("Location", self.redirect_to + h.path)], b""))
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(h.command, h.path, body=body, headers={k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP})
            r = conn.getresponse()
            answer: Answer = (r.status, r.getheaders(), r.read())
        finally:
            conn.close()
        shaped = self.shape(n, h.path, answer)
        if shaped is None:
            h.close_connection = True
            return
        self.send(h, shaped)

    def send(self, h: BaseHTTPRequestHandler, answer: Answer) -> None:
        status, headers, data = answer
        send_head(h, status, headers, len(data))
        h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front() -> Iterator[Callable[..., Front]]:
    made: list[Front] = []

    def make(upstream: str, shape: Callable[[int, str, Answer], Answer | None], **kw: Any) -> Front:
        made.append(Front(upstream, shape, **kw))
        return made[-1]

    yield make
    for f in made:
        f.close()


def last_status(engine: Any) -> list[str | None]:
    with engine.connect() as c:
        return list(c.execute(select(outbox_batches.c.last_status).order_by(outbox_batches.c.created)).scalars())


def test_a_cookie_the_front_sets_is_sent_back_with_the_next_batches(
    gateway_dir: GatewayDir, live_hub: Any, front: Callable[..., Front]
) -> None:
    def shape(n: int, path: str, a: Answer) -> Answer:
        return (a[0], [*a[1], ("Set-Cookie", "lb=node-2; Path=/")], a[2]) if n == 0 else a

    f = front(live_hub.url, shape)
    config = gateway_dir.for_hub(live_hub, url=f.url, batch_size=1)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(3)])
    with PushClient(config, engine, window=1) as client:  # one session, one cookie jar
        assert client.drain(give_up_after=0).accepted == 3
    cookies = [h.get("Cookie") for _, _, h in f.seen]
    assert cookies == [None, "lb=node-2", "lb=node-2"]


def test_a_temporary_redirect_is_followed_with_the_same_signed_batch(
    gateway_dir: GatewayDir, live_hub: Any, front: Callable[..., Front]
) -> None:
    moved = front(live_hub.url, lambda n, path, a: a)
    f = front(live_hub.url, lambda n, path, a: a, redirect_to=moved.url)
    config = gateway_dir.for_hub(live_hub, url=f.url)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(2)])
    assert push_pending(config, engine, **ONE_TRY).accepted == 2
    assert [(m, p) for m, p, _ in moved.seen] == [("POST", "/api/v1/batches")]
    assert outbox_states(engine) == {"delivered": 2}


def test_a_compressed_receipt_is_decoded_before_it_is_verified(
    gateway_dir: GatewayDir, live_hub: Any, front: Callable[..., Front]
) -> None:
    def shape(n: int, path: str, a: Answer) -> Answer:
        return (a[0], [*a[1], ("Content-Encoding", "gzip")], gzip.compress(a[2]))

    f = front(live_hub.url, shape)
    config = gateway_dir.for_hub(live_hub, url=f.url)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    assert push_pending(config, engine, **ONE_TRY).accepted == 1
    assert "gzip" in f.seen[0][2].get("Accept-Encoding", "")


@pytest.mark.parametrize(("fault", "status"), [("hang_up", "connection"), ("stall", "timeout"), ("cut", "broken")])
def test_a_broken_answer_leaves_the_batch_sent_with_the_reason(
    fault: str, status: str, gateway_dir: GatewayDir, live_hub: Any, front: Callable[..., Front]
) -> None:
    def shape(n: int, path: str, a: Answer) -> Answer | None:
        if fault == "hang_up":
            return None
        if fault == "stall":
            time.sleep(1.5)
            return a
        return (a[0], [*a[1], ("Content-Encoding", "gzip")], b"\x1f\x8b not gzip at all")

    f = front(live_hub.url, shape)
    config = gateway_dir.for_hub(live_hub, url=f.url, timeout=0.5)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    summary = push_pending(config, engine, max_batches=1, **ONE_TRY)
    assert summary.accepted == 0 and summary.failed_attempts == 1
    assert outbox_states(engine) == {"sent": 1}
    assert last_status(engine) == [status]


def test_a_transport_sends_again_after_it_was_closed(gateway_dir: GatewayDir, live_hub: Any) -> None:
    from gateway.push.batching import claim_batch
    from gateway.push.transport import HubTransport
    from tests.fixtures.push import DEPARTMENT

    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(2)])
    transport = HubTransport(config)
    first = claim_batch(engine, DEPARTMENT, batch_size=1, max_bytes=10**6)
    assert first is not None and transport.send(first).doc["batch_id"] == first.batch_id
    transport.close()
    second = claim_batch(engine, DEPARTMENT, batch_size=1, max_bytes=10**6)
    assert second is not None and transport.send(second).doc["batch_id"] == second.batch_id
    transport.close()
