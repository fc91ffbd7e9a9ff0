"""What push tests compare: the hub's stored records against the gateway's source edits, and the kept evidence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, func, select

from gateway.protocol.canonical import record_version
from gateway.protocol.keys import read_public_key
from gateway.protocol.receipts import verify_receipt
from gateway.store.tables import batch_receipts, outbox
from tests.fixtures.push import Edit

State = dict[tuple[str, str], tuple[int, str, bool]]


def expected_state(edits: Iterable[Edit]) -> State:
    """The final state per (type, key): the highest seq's version and whether it is deleted."""
    out: State = {}
    for e in edits:
        k = (e.record_type, e.key)
        if k not in out or e.seq > out[k][0]:
            out[k] = (e.seq, record_version(e.data), e.data is None)
    return out


def outbox_state(engine: Engine) -> State:
    """The final state per (type, key) as the gateway enqueued it (highest seq wins)."""
    out: State = {}
    with engine.connect() as c:
        for r in c.execute(select(outbox.c.record_type, outbox.c.record_key, outbox.c.seq, outbox.c.version, outbox.c.op)):
            k = (r.record_type, r.record_key)
            if k not in out or r.seq > out[k][0]:
                out[k] = (r.seq, r.version, r.op == "delete")
    return out


def hub_state(hub: Any, department: str = "dept001") -> State:
    from gateway.hub.tables import records

    with hub.engine.connect() as c:
        rows = c.execute(
            select(records.c.type, records.c.key, records.c.seq, records.c.version, records.c.deleted).where(
                records.c.department == department
            )
        ).all()
    return {(r.type, r.key): (r.seq, r.version, bool(r.deleted)) for r in rows}


def hub_accepted_twice(hub: Any) -> int:
    """Accepted writes of the same (key, seq) more than once: 0 when idempotency held."""
    from gateway.hub.tables import record_history

    h = record_history.c
    with hub.engine.connect() as c:
        q = select(h.type, h.key, h.seq).group_by(h.department, h.type, h.key, h.seq).having(func.count() > 1)
        return len(c.execute(q).all())


def outbox_states(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())


def all_receipts_verify(engine: Engine, hub_public_key_path: Any) -> int:
    """Check every stored batch receipt against the hub's public key; returns how many there are."""
    key = read_public_key(hub_public_key_path)
    n = 0
    with engine.connect() as c:
        for r in c.execute(select(batch_receipts.c.batch_id, batch_receipts.c.body, batch_receipts.c.signature)):
            assert verify_receipt(r.body, r.signature, key)["batch_id"] == r.batch_id
            n += 1
    return n
