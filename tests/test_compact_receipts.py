"""Compact receipts (protocol 1.1, docs/protocol.md "Compact receipts"): a real hub on loopback, both suites.

The hub answers a client that asked (Protocol-Version 1.1) with the accepted records as a Merkle root and
the others listed, everyone else with today's full receipt; the gateway stores the same outcome either way,
and a compact receipt whose root, count or list does not fit the batch is refused.
"""

from __future__ import annotations

import http.client
import threading
from typing import Any

import orjson
import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import cli
from gateway.protocol.batch import COMPACT_VERSION
from gateway.protocol.keys import new_key_pair, public_key_from_text
from gateway.protocol.receipts import ReceiptInvalid, expand_compact, sign_receipt, verify_receipt
from gateway.protocol.signing import sign_request
from gateway.protocol.suites import suite_of
from gateway.push import record_receipts
from gateway.push.transport import HubTransport
from gateway.store.tables import dead_letters, outbox, receipts
from tests.fixtures.faultproxy import relay_server, send_head
from tests.fixtures.hub import LiveHub, batch_body, record, sample
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey


def post(hub: LiveHub, body: bytes, version: str | None) -> requests.Response:
    """POST a batch as a client speaking `version` (None: a gateway from before the Protocol-Version header)."""
    headers = {"Content-Type": "application/json"}
    if version is None:
        headers.update(sign_request("POST", "/api/v1/batches", body, hub.key, hub.key_id, protocol_version=None))
    else:
        headers.update(sign_request("POST", "/api/v1/batches", body, hub.key, hub.key_id, protocol_version=version))
    return requests.post(hub.url + "/api/v1/batches", data=body, headers=headers, timeout=30)


def mixed(hub: LiveHub) -> list[dict[str, Any]]:
    """A batch of accepted, duplicate, stale and rejected records (the hub seeded for it)."""
    seeded = [record("material", sample("material", 1)), record("material", sample("material", 2), seq=5)]
    assert post(hub, batch_body(seeded), "1").status_code == 200
    bad = dict(sample("material", 4), reserve_mode="9")
    return [record("material", sample("material", 3)), record("material", sample("material", 1)),
            record("material", sample("material", 2), seq=3), record("material", bad),
            record("material", sample("material", 5))]


def test_an_old_client_gets_a_full_receipt_and_a_1_1_client_a_compact_one(suite_hub: LiveHub) -> None:
    recs = mixed(suite_hub)
    hub_key = public_key_from_text(suite_hub.hub_public_key)
    old = post(suite_hub, batch_body(recs[:1]), None)
    one = post(suite_hub, batch_body(recs[1:3]), "1")
    assert old.status_code == one.status_code == 200
    for r in (old, one):
        doc = verify_receipt(r.content, r.headers["Receipt-Signature"], hub_key)
        assert doc["protocol"] == "1" and "accepted" not in doc and len(doc["results"]) == len(orjson.loads(
            r.request.body)["records"])
    body = batch_body(recs)
    r = post(suite_hub, body, COMPACT_VERSION)
    assert r.status_code == 200
    doc = verify_receipt(r.content, r.headers["Receipt-Signature"], hub_key)
    assert doc["protocol"] == "1.1" and doc["accepted"]["count"] == 1 and len(doc["accepted"]["hub_seqs"]) == 1
    # Only the others are listed, each with its place in the batch (record 3 was accepted above already).
    assert [(x["index"], x["status"]) for x in doc["results"]] == [
        (0, "duplicate"), (1, "duplicate"), (2, "stale"), (3, "rejected")]
    assert doc["results"][3]["reasons"][0]["field"] == "reserve_mode"
    leaves = [(x["type"], x["department"], x["key"], x["seq"], x["version"]) for x in recs]
    full = expand_compact(doc, leaves, suite_of(hub_key).digest)
    assert [x["status"] for x in full] == ["duplicate", "duplicate", "stale", "rejected", "accepted"]
    assert full[4]["hub_seq"] == doc["accepted"]["hub_seqs"][0]
    # The same batch id again: the very receipt it signed first.
    again = post(suite_hub, body, "1")
    assert again.content == r.content and again.headers["Receipt-Signature"] == r.headers["Receipt-Signature"]


def signed_compact(hub: LiveHub) -> tuple[dict[str, Any], list[tuple[str, str, str, int, str]], Any]:
    recs = mixed(hub)
    r = post(hub, batch_body(recs), COMPACT_VERSION)
    hub_key = public_key_from_text(hub.hub_public_key)
    doc = verify_receipt(r.content, r.headers["Receipt-Signature"], hub_key)
    return doc, [(x["type"], x["department"], x["key"], x["seq"], x["version"]) for x in recs], hub_key


@pytest.mark.parametrize("tamper", ["root", "listed_removed", "count", "hub_seqs", "index", "status"])
def test_a_compact_receipt_that_does_not_fit_the_batch_is_refused(suite_hub: LiveHub, tamper: str) -> None:
    doc, leaves, hub_key = signed_compact(suite_hub)
    digest = suite_of(hub_key).digest
    assert len(expand_compact(doc, leaves, digest)) == 5
    acc = dict(doc["accepted"])
    results = list(doc["results"])
    if tamper == "root":
        acc["merkle_root"] = "00" * 32
    elif tamper == "listed_removed":  # a rejected record left out would pass as accepted
        results = results[:-1]
    elif tamper == "count":
        acc["count"] += 1
        acc["hub_seqs"] = [*acc["hub_seqs"], 99]
    elif tamper == "hub_seqs":
        acc["hub_seqs"] = []
    elif tamper == "index":
        results[0] = {**results[0], "index": 4}
    else:
        results[2] = {**results[2], "status": "accepted"}
    forged = {**doc, "accepted": acc, "results": results}
    with pytest.raises(ReceiptInvalid):
        expand_compact(forged, leaves, digest)
    # Signed by the hub's own key, it is still no receipt for this batch (the signature is not the only check).
    body, sig = sign_receipt(forged, suite_hub.app.extensions["hub"].key, doc["hub_key_id"])
    with pytest.raises(ReceiptInvalid):
        expand_compact(verify_receipt(body, sig, hub_key), leaves, digest)


def outcome(gw: GatewayDir) -> list[tuple[Any, ...]]:
    """What the clerk sees per outbox row: its state, its receipt (status, reasons, a hub_seq or not), its dead letter."""
    engine = gw.store()
    with engine.connect() as c:
        rows = c.execute(select(outbox.c.id, outbox.c.record_key, outbox.c.seq, outbox.c.state).order_by(outbox.c.id)).all()
        got = {r.outbox_id: record_receipts.as_row(r) for r in record_receipts.of_outbox(c, [i for i, *_ in rows])}
        dead = {r.outbox_id: r.reasons for r in c.execute(select(dead_letters))}
    return [(key, seq, state, got[i]["status"], got[i]["reasons"], got[i]["hub_seq"] is not None, dead.get(i))
            for i, key, seq, state in rows]


def push_mixed(gw: GatewayDir, hub: LiveHub) -> list[tuple[Any, ...]]:
    gw.for_hub(hub, batch_size=50)
    runner = CliRunner()
    enqueue(gw.store(), [Edit(mkey(0), 1, material(0)), Edit(mkey(1), 5, material(1))])
    assert runner.invoke(cli, ["--config", str(gw.config_path), "push-pending"]).exit_code == 0
    enqueue(gw.store(), [Edit(mkey(2), 1, material(2)), Edit(mkey(0), 1, material(0)), Edit(mkey(1), 3, material(1)),
                         Edit(mkey(3), 1, material(3, reserve_mode="9")), Edit(mkey(4), 1, material(4))])
    res = runner.invoke(cli, ["--config", str(gw.config_path), "push-pending"])
    assert res.exit_code == 0, res.output
    verified = runner.invoke(cli, ["--config", str(gw.config_path), "receipts", "verify"])
    assert verified.exit_code == 0 and "记录回执 7 条：有效 7，无效 0" in verified.output, verified.output
    return outcome(gw)


def test_the_gateway_stores_the_same_outcome_from_compact_and_full_receipts(
    tmp_path: Any, hub_factory: Any, suite_hub: LiveHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    compact_gw, full_gw = make_gateway(tmp_path / "a"), make_gateway(tmp_path / "b")
    compact = push_mixed(compact_gw, suite_hub)
    with compact_gw.store().connect() as c:
        bodies = [bytes(b) for (b,) in c.exec_driver_sql("SELECT body FROM batch_receipts ORDER BY received_at")]
    assert all(b'"accepted":{' in b for b in bodies)  # both batches were answered compact
    monkeypatch.setattr(HubTransport, "protocol", "1")  # a 1.0 gateway: full receipts
    full = push_mixed(full_gw, hub_factory(suite=suite_hub.suite))
    with full_gw.store().connect() as c:
        assert all(b'"accepted":{' not in bytes(b) for (b,) in c.exec_driver_sql("SELECT body FROM batch_receipts"))
    assert compact == full
    assert [(k, s, st, status) for k, s, st, status, *_ in compact[2:]] == [
        (mkey(2), 1, "delivered", "accepted"), (mkey(0), 1, "delivered", "duplicate"),
        (mkey(1), 3, "delivered", "stale"), (mkey(3), 1, "dead", "rejected"), (mkey(4), 1, "delivered", "accepted")]
    assert "reserve_mode" in compact[5][4] and compact[5][6] is not None


def make_gateway(root: Any) -> GatewayDir:
    """A gateway folder as the `gateway_dir` fixture makes it (two are needed here)."""
    new_key_pair(root / "keys" / "gateway.key", root / "keys" / "gateway.pub")
    return GatewayDir(root, root / "gateway.toml", root / "keys" / "hub.pub", root / "keys" / "gateway.pub")


class ResigningProxy:
    """Between gateway and hub on loopback: relays the batch, then alters the compact receipt with `forge` and
    signs it again with the hub's own key (a hub that signs a wrong root: the signature alone proves nothing)."""

    def __init__(self, hub: LiveHub, forge: Any) -> None:
        self.hub, self.forge, self.answered = hub, forge, 0
        self.server = relay_server(self.handle)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, h: Any) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection("127.0.0.1", self.hub.port, timeout=60)
        conn.request(h.command, h.path, body=body, headers={k: v for k, v in h.headers.items() if k.lower() != "host"})
        resp = conn.getresponse()
        data, headers = resp.read(), resp.getheaders()
        conn.close()
        doc = orjson.loads(data)
        if resp.status == 200 and "accepted" in doc:
            hub = self.hub.app.extensions["hub"]
            data, sig = sign_receipt(self.forge(doc), hub.key, hub.key_id)
            headers = [(k, v) for k, v in headers if k.lower() != "receipt-signature"]
            headers.append(("Receipt-Signature", f":{sig}:"))
            self.answered += 1
        send_head(h, resp.status, headers, len(data))
        h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _root_changed(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "accepted": {**doc["accepted"], "merkle_root": "ab" * 32}}


def _listed_removed(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "results": doc["results"][1:]}


def _count_changed(doc: dict[str, Any]) -> dict[str, Any]:
    acc = doc["accepted"]
    return {**doc, "accepted": {**acc, "count": acc["count"] - 1, "hub_seqs": acc["hub_seqs"][:-1]}}


@pytest.mark.parametrize("forge", [_root_changed, _listed_removed, _count_changed], ids=lambda f: f.__name__[1:])
def test_the_gateway_refuses_a_signed_compact_receipt_that_does_not_fit_and_retries(
    gateway_dir: GatewayDir, suite_hub: LiveHub, forge: Any
) -> None:
    proxy = ResigningProxy(suite_hub, forge)
    try:
        gateway_dir.for_hub(suite_hub, url=proxy.url, batch_size=50)
        # One record the hub rejects, so that a listed record can be left out.
        enqueue(gateway_dir.store(), [Edit(mkey(0), 1, material(0)), Edit(mkey(1), 1, material(1, reserve_mode="9")),
                                      Edit(mkey(2), 1, material(2))])
        CliRunner().invoke(cli, ["--config", str(gateway_dir.config_path), "push-pending", "--retry-for", "0"])
        assert proxy.answered >= 1
        with gateway_dir.store().connect() as c:
            states = {s for (s,) in c.execute(select(outbox.c.state))}
            assert states == {"sent"}  # not delivered, not dead: it waits for a receipt that fits
            assert c.execute(select(receipts)).first() is None
    finally:
        proxy.close()
    # Straight to the hub: the same batch again, answered with the receipt the hub signed for it first.
    gateway_dir.for_hub(suite_hub, batch_size=50)
    res = CliRunner().invoke(cli, ["--config", str(gateway_dir.config_path), "push-pending", "--retry-for", "10"])
    assert _states(gateway_dir) == {"delivered", "dead"}, res.output


def _states(gw: GatewayDir) -> set[str]:
    with gw.store().connect() as c:
        return {s for (s,) in c.execute(select(outbox.c.state))}
