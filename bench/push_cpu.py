"""The push client's CPU per record on a bulk push, without a hub: claim_batch and store_receipt.

    .venv/bin/python bench/push_cpu.py [ROWS] [--batch=1000] [--receipt=full|compact]

Fills a fresh gateway state store with ROWS pending material records, claims
them batch by batch (building each signed-to-be body), then takes a receipt
for each batch as a hub would answer it (every 50th record rejected), signed
with an Ed25519 hub key: the signature checked and the document read
(`verify_receipt`), a compact one (protocol 1.1, the default when this tree has
it) checked against the batch's rows (`expanded`: its Merkle root
recomputed), and stored (`store_receipt`). Prints CPU microseconds per record
for each step (resource usage of this process, so other load on the machine
hardly matters). Runs against an older tree too (PYTHONPATH=that tree), which
knows full receipts only.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.protocol import receipts as receipt_protocol
from gateway.protocol.canonical import canonical_json, record_version
from gateway.push.batching import claim_batch
from gateway.push.receipts import store_receipt
from gateway.store import open_store
from gateway.store.tables import outbox

DEPT = "330110-BENCH"


def rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        data = {
            "material_id": f"WZ{i:06d}", "material_name": f"折叠床{i}", "category_code": "1101", "unit": "张",
            "reserve_mode": "1", "spec": "190x70cm", "quantity": i * 1.5, "depot_id": f"CK{i % 50}",
            "checked_date": "2024-03-01", "note": "应急储备物资",
        }
        yield {
            "source": "s", "record_type": "material", "record_key": f"WZ{i:06d}", "op": "upsert", "seq": 1,
            "version": record_version(data), "data": canonical_json(data).decode(),
            "updated_at": "2024-03-01T08:00:00+08:00", "enqueued_at": "2024-03-01T00:00:00+00:00",
            "state": "pending", "attempts": 0,
            "provenance": orjson.dumps({"source": "s", "source_key": str(i), "mapping_version": 1, "operator": "system"}).decode(),
        }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 20000
    size = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--batch=")), 1000)
    can_compact = hasattr(receipt_protocol, "compact_parts")
    form = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--receipt=")),
                "compact" if can_compact else "full")
    if form == "compact" and not can_compact:
        raise SystemExit("this tree has no compact receipts")
    hub_key = Ed25519PrivateKey.generate()
    hub_public = hub_key.public_key()
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(Path(tmp) / "gateway.db")
        with engine.begin() as conn:
            conn.execute(outbox.insert(), list(rows(n)))
        claim_cpu = receipt_cpu = verify_cpu = 0.0
        done = 0
        while True:
            t = time.process_time()
            batch = claim_batch(engine, DEPT, batch_size=size, max_bytes=50_000_000)
            claim_cpu += time.process_time() - t
            if batch is None:
                break
            doc = {
                "batch_id": batch.batch_id, "department": DEPT, "hub_time": "2024-03-01T00:00:01+00:00",
                "log_head": "0" * 64, "log_seq": 1, "hub_key_id": "hub-1",
                "results": [
                    {
                        "type": r.record_type, "key": r.record_key, "seq": r.seq, "version": r.version,
                        "status": "rejected" if r.outbox_id % 50 == 0 else "accepted",
                        "reasons": [{"field": "unit", "code": "x"}] if r.outbox_id % 50 == 0 else [],
                        "hub_seq": r.outbox_id,
                    }
                    for r in batch.rows
                ],
            }
            body, sig = _signed(doc, form, hub_key)
            t = time.process_time()
            got = receipt_protocol.verify_receipt(body, sig, hub_public)
            if form == "compact":
                got = receipt_protocol.expanded(
                    got, [(r.record_type, DEPT, r.record_key, r.seq, r.version) for r in batch.rows], hashlib_digest)
            verify_cpu += time.process_time() - t
            t = time.process_time()
            done += len(store_receipt(engine, batch, body, sig, got, DEPT))
            receipt_cpu += time.process_time() - t
        engine.dispose()
    print(f"push client CPU, {done} records in batches of {size} (no hub), {form} receipts:")
    print(f"  claim_batch    {claim_cpu / done * 1e6:6.1f} us/record")
    print(f"  verify receipt {verify_cpu / done * 1e6:6.1f} us/record")
    print(f"  store_receipt  {receipt_cpu / done * 1e6:6.1f} us/record")
    print(f"  receipt total  {(verify_cpu + receipt_cpu) / done * 1e6:6.1f} us/record")


def hashlib_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()  # the ed25519 suite's digest


def _signed(doc: dict[str, Any], form: str, hub_key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """The receipt as the hub signs it: the full results, or (compact) the accepted ones as a Merkle root."""
    doc = {"protocol": "1", **doc}
    if form == "compact":
        doc["protocol"] = "1.1"
        doc["accepted"], doc["results"] = receipt_protocol.compact_parts(doc["results"], DEPT, hashlib_digest)
    return receipt_protocol.sign_receipt(doc, hub_key, "hub-1")


if __name__ == "__main__":
    main()
