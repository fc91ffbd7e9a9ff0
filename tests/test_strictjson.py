"""Duplicate JSON member names: refused in batches at the hub and in receipts at the gateway.

A signed document must have one meaning; `{"department": "B", "department": "A"}` has two.
Also: the strict decoder's fast path (canonical bodies) and slow path agree.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from gateway.hub import tables
from gateway.protocol import ReceiptInvalid, canonical_json, verify_receipt
from gateway.protocol.keys import public_key_from_text, read_private_key
from gateway.protocol.strictjson import DuplicateMember, check_members, loads_strict
from gateway.push.client import push_pending
from tests.fixtures.hub import LiveHub, batch_body, record, sample
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey
from tests.push_checks import outbox_states
from tests.test_hub_ingest import log_entries
from tests.test_push_transport_answers import Answer, Front

BATCHES = "/api/v1/batches"


def records_stored(hub: LiveHub) -> int:
    with hub.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(tables.records)).scalar_one())


@pytest.mark.parametrize(
    ("tamper", "member", "path"),
    [
        # Signed by dept001; a first-wins reader would see dept009's batch.
        (
            lambda b: b.replace(b'"department":"dept001"', b'"department":"dept009","department":"dept001"', 1),
            "department",
            "$",
        ),
        (
            lambda b: b.replace(b'"material_name":', b'"material_name":"\xe5\xb8\x90\xe7\xaf\xb7","material_name":', 1),
            "material_name",
            "$.records[1].data",
        ),
    ],
)
def test_signed_batch_with_a_repeated_member_name_is_refused_400_and_nothing_stored(
    live_hub: LiveHub, tamper: Callable[[bytes], bytes], member: str, path: str
) -> None:
    good = batch_body([record("depot", sample("depot")), record("material", sample("material"))])
    body = tamper(good)
    assert body != good and orjson.loads(body) == orjson.loads(good), "orjson alone sees the same batch"
    r = live_hub.post(BATCHES, body)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert (doc["error"], doc["member"], doc["path"]) == ("duplicate_member", member, path)
    assert member in doc["message"] and path in doc["message"] and "重复" in doc["message"]
    assert records_stored(live_hub) == 0
    [logged] = log_entries(live_hub, "refused")
    assert (logged["status"], logged["department"], logged["key_id"]) == ("duplicate_member", "dept001", "dept001-1")
    assert live_hub.post(BATCHES, good).status_code == 200, "the same batch without the repeat is taken"
    assert records_stored(live_hub) == 2


def test_a_signed_receipt_with_a_repeated_member_name_does_not_verify(live_hub: LiveHub) -> None:
    r = live_hub.post(BATCHES, batch_body([record("material", sample("material"))]))
    public = public_key_from_text(live_hub.hub_public_key)
    assert verify_receipt(r.content, r.headers["Receipt-Signature"], public)["results"][0]["status"] == "accepted"
    key = read_private_key(live_hub.dir / "keys" / "hub.key")  # as the hub itself would sign it
    twice = r.content.replace(b'"status":"accepted"', b'"status":"rejected","status":"accepted"')
    assert orjson.loads(twice) == orjson.loads(r.content)
    with pytest.raises(ReceiptInvalid, match="status"):
        verify_receipt(twice, base64.b64encode(key.sign(twice)).decode(), public)


@pytest.fixture
def front() -> Iterator[Callable[..., Front]]:
    made: list[Front] = []

    def make(upstream: str, shape: Callable[[int, str, Answer], Answer | None]) -> Front:
        made.append(Front(upstream, shape))
        return made[-1]

    yield make
    for f in made:
        f.close()


def test_gateway_keeps_a_batch_undelivered_when_the_hub_signs_a_receipt_with_a_repeated_name(
    gateway_dir: GatewayDir, live_hub: LiveHub, front: Callable[..., Front]
) -> None:
    key = read_private_key(live_hub.dir / "keys" / "hub.key")

    def shape(n: int, path: str, a: Answer) -> Answer:
        status, headers, body = a
        if status != 200 or path != BATCHES:
            return a
        # A hub (or whoever holds its key) answering with two meanings: first-wins readers see a forged log head.
        twice = b'{"log_head":"' + b"0" * 64 + b'",' + body[1:]
        sig = base64.b64encode(key.sign(twice)).decode()
        return (
            status,
            [(k, v) for k, v in headers if k.lower() != "receipt-signature"] + [("Receipt-Signature", f":{sig}:")],
            twice,
        )

    f = front(live_hub.url, shape)
    config = gateway_dir.for_hub(live_hub, url=f.url)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    summary = push_pending(config, engine, max_batches=1, give_up_after=0)
    assert summary.accepted == 0 and summary.failed_attempts == 1
    assert outbox_states(engine) == {"sent": 1}, "not delivered on a receipt with two meanings"


# -- the decoder: fast path (canonical) and slow path agree ------------------------------------------------

DOCS: list[Any] = [
    {"a": 1, "b": [1, 2, {"c": None}], "d": {"e": "帐篷𠀀", "f": 1.5}},
    [{"x": 1}, {"x": 2}, []],
    {"": 0, "k k": {"\u0000": True}},
    "scalar",
    7,
]


@pytest.mark.parametrize("doc", DOCS)
def test_canonical_and_other_spellings_give_the_same_document(doc: Any) -> None:
    canonical = canonical_json(doc)
    spaced = json.dumps(doc, ensure_ascii=True, indent=1).encode()
    assert loads_strict(canonical) == loads_strict(spaced) == json.loads(spaced) == doc
    check_members(canonical)  # the slow path finds nothing where the fast one can prove nothing is
    check_members(spaced)


@pytest.mark.parametrize(
    ("text", "member", "path"),
    [
        ('{"a":1,"a":1}', "a", "$"),
        ('{"a":{"b":[{"c":1},{"c":2,"d":3,"c":4}]}}', "c", "$.a.b[1]"),
        ('[1, {"x": {"y": 1, "y": 2}}]', "y", "$[1].x"),
        ('{"物资": {"名称": 1, "名称": 2}}', "名称", "$.物资"),
        ('{"k k": {"z": 1, "z": 1}}', "z", '$["k k"]'),
        ('{"o": {"p": 1, "p": 2}, "o": 3}', "o", "$"),  # outer first, in document order
    ],
)
def test_a_repeated_name_is_named_with_its_path_on_either_spelling(text: str, member: str, path: str) -> None:
    for spelling in (text.encode(), text.replace(", ", ",").replace(": ", ":").encode()):
        with pytest.raises(DuplicateMember) as e:
            loads_strict(spelling)
        assert (e.value.member, e.value.path) == (member, path)


def test_not_json_is_the_same_error_as_before() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        loads_strict(b'{"a": ')
    assert loads_strict(b"[" * 300 + b"]" * 300) == orjson.loads(b"[" * 300 + b"]" * 300), "deeper than orjson writes"
    with pytest.raises(DuplicateMember):
        loads_strict(b'{"a":' * 300 + b'{"b":1,"b":2}' + b"}" * 300)
    with pytest.raises(orjson.JSONDecodeError):
        loads_strict(b"[" * 1000 + b"]" * 1000)  # orjson reads it, the checking parser cannot: refused, not a crash
