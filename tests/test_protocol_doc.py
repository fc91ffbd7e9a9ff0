"""docs/protocol.md's worked example is real: regenerate it with fixed keys, nonce and time and compare.

Run `python -m tests.test_protocol_doc` to print the blocks after a protocol change.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.protocol import (
    canonical_json,
    content_digest,
    make_batch,
    make_record,
    record_version,
    sign_receipt,
    sign_request,
    verify_receipt,
    verify_request,
)
from gateway.protocol.keys import public_key_text
from gateway.protocol.merkle import inclusion_proof, leaf_data, merkle_root, verify_inclusion
from gateway.protocol.receipts import compact_parts, expand_compact
from gateway.protocol.signing import signature_base
from gateway.protocol.suites import suite

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"

# RFC 8032 §7.1 test vectors 1 and 2: well-known keys, never used for real.
GATEWAY_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
HUB_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
CREATED = 1793232000  # 2026-10-28T00:00:00Z
NONCE = "6f1c2a9be0d34f5a8c7e1b2d3f405162"


def worked_example() -> dict[str, str]:
    gw_key = Ed25519PrivateKey.from_private_bytes(GATEWAY_SEED)
    hub_key = Ed25519PrivateKey.from_private_bytes(HUB_SEED)
    data = {
        "material_id": "WZ-0001",
        "material_name": "折叠床",
        "category_code": "1010100",
        "unit": "张",
        "reserve_mode": "1",
    }
    rec = make_record(
        "material", "yjj", "WZ-0001", "upsert", 1, record_version(data), data,
        updated_at="2026-10-27T09:30:00+08:00",
        provenance={"source": "wz_db", "source_key": "17", "mapping_version": 3, "operator": "张三"},
    )
    batch = make_batch(
        "yjj", "wz_db", [rec], batch_id="0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b", created="2026-10-28T00:00:00+00:00"
    )
    body = canonical_json(batch)
    headers = sign_request("POST", "/api/v1/batches", body, gw_key, "yjj-1", created=CREATED, nonce=NONCE,
                           content_type="application/json")
    params = headers["Signature-Input"].removeprefix("sig1=")
    components = ("@method", "@path", "content-digest", "content-type", "protocol-version")
    fields = {"content-type": "application/json", "protocol-version": "1"}
    base = signature_base("POST", "/api/v1/batches", headers["Content-Digest"], params, components, fields)
    verify_request("POST", "/api/v1/batches", headers, body, lambda k: gw_key.public_key(), now=CREATED)
    receipt = {
        "protocol": "1",
        "batch_id": batch["batch_id"],
        "department": "yjj",
        "hub_time": "2026-10-28T00:00:01.250000+00:00",
        "log_seq": 42,
        "log_head": "9f2b5c0d1e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c",
        "results": [
            {"key": "WZ-0001", "type": "material", "seq": 1, "version": rec["version"], "status": "accepted",
             "hub_seq": 1042, "reasons": []},
        ],
    }
    rbody, rsig = sign_receipt(receipt, hub_key, "hub-1")
    verify_receipt(rbody, rsig, hub_key.public_key())
    return {
        **compact_example(hub_key),
        "gateway-public-key": public_key_text(gw_key.public_key()),
        "hub-public-key": public_key_text(hub_key.public_key()),
        "body": body.decode("utf-8"),
        "content-digest": content_digest(body),
        "signature-base": base.decode("utf-8"),
        "headers": "\n".join(f"{k}: {v}" for k, v in headers.items()),
        "receipt": rbody.decode("utf-8"),
        "receipt-signature": f"Receipt-Signature: :{rsig}:",
    }


def compact_example(hub_key: Ed25519PrivateKey) -> dict[str, str]:
    """A compact receipt (protocol 1.1) for three records: the first and last accepted, the middle rejected."""
    digest = suite("ed25519").digest
    datas = [{"material_id": f"WZ-000{i}", "material_name": "折叠床", "category_code": "1010100", "unit": "张",
              "reserve_mode": "9" if i == 2 else "1"} for i in (1, 2, 3)]
    records = [("material", "yjj", d["material_id"], 1, record_version(d)) for d in datas]
    reason = {"field": "reserve_mode", "label": "储备方式", "value": "9", "rule": "enum",
              "message": "储备方式 须为 1、2、3 之一"}
    results = [{"key": k, "type": t, "seq": seq, "version": v, "status": "rejected" if k == "WZ-0002" else "accepted",
                "hub_seq": None if k == "WZ-0002" else hub_seq, "reasons": [reason] if k == "WZ-0002" else []}
               for (t, _, k, seq, v), hub_seq in zip(records, (1043, None, 1044), strict=True)]
    accepted, listed = compact_parts(results, "yjj", digest)
    receipt = {"protocol": "1.1", "batch_id": "5d1f3b2a-6c7e-4f80-9a1b-2c3d4e5f6071", "department": "yjj",
               "hub_time": "2026-10-28T00:00:02.500000+00:00", "log_seq": 43,
               "log_head": "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
               "accepted": accepted, "results": listed}
    rbody, rsig = sign_receipt(receipt, hub_key, "hub-1")
    doc = verify_receipt(rbody, rsig, hub_key.public_key())
    assert expand_compact(doc, records, digest) == results  # the gateway's view: the full results again
    leaves = [leaf_data(*records[0]), leaf_data(*records[2])]
    root = merkle_root(digest, leaves)
    proof = inclusion_proof(digest, leaves, 1)
    assert root.hex() == accepted["merkle_root"] and verify_inclusion(digest, leaves[1], 1, 2, proof, root)
    return {
        "compact-leaves": "\n".join(x.decode("utf-8") for x in leaves),
        "compact-leaf-hashes": "\n".join(digest(b"\x00" + x).hex() for x in leaves),
        "compact-root": root.hex(),
        "compact-receipt": rbody.decode("utf-8"),
        "compact-receipt-signature": f"Receipt-Signature: :{rsig}:",
        "compact-proof": "\n".join(p.hex() for p in proof),
    }


def doc_blocks() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- example:([a-z-]+) -->\n```[a-z]*\n(.*?)\n```", text, re.S)}


def test_worked_example_in_doc_matches_the_code() -> None:
    blocks = doc_blocks()
    for name, value in worked_example().items():
        assert name in blocks, f"docs/protocol.md lacks the example block {name}"
        assert blocks[name] == value, f"docs/protocol.md example {name} is out of date; run python -m tests.test_protocol_doc"


if __name__ == "__main__":
    for name, value in worked_example().items():
        print(f"<!-- example:{name} -->\n```\n{value}\n```\n")
