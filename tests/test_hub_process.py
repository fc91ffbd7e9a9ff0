"""`gateway hub --config F run` as its own process: receipts and the replay cache survive kill -9."""

from __future__ import annotations

from tests.fixtures.hub import LiveHub, batch_body, record, sample

BATCHES = "/api/v1/batches"


def test_hub_process_survives_kill_9(live_hub_process: LiveHub) -> None:
    hub = live_hub_process
    body = batch_body([record("material", sample("material"))])
    first = hub.post(BATCHES, body, nonce="n" * 32)
    assert first.status_code == 200
    hub.kill()
    hub.start()
    again = hub.post(BATCHES, body)
    assert again.content == first.content and again.headers["Receipt-Signature"] == first.headers["Receipt-Signature"]
    replay = hub.post(BATCHES, batch_body([]), nonce="n" * 32)
    assert replay.status_code == 401 and replay.json()["error"] == "replay"
    hub.stop()
    hub.start()
    assert hub.post(BATCHES, batch_body([record("material", sample("material", 2))])).status_code == 200
