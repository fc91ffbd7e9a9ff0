"""gateway/store/prepared.py: Core statements compiled once to qmark text run like the Core statement."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import bindparam, insert, select, update

from gateway.store.prepared import prepare
from gateway.store.tables import outbox


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, source, record_type, record_key, op, seq, version, data,"
        " updated_at, provenance, enqueued_at, state, batch_id, attempts)"
    )
    return db


def test_constants_are_rendered_and_parameters_follow_the_placeholders() -> None:
    stmt = prepare(
        update(outbox)
        .where(outbox.c.state == "sent", outbox.c.batch_id == bindparam("of_batch"))
        .values(state="pending", batch_id=None, attempts=outbox.c.attempts + 1)
    )
    assert stmt.params == ("of_batch",)
    assert "'sent'" in stmt.sql and "'pending'" in stmt.sql and "batch_id=NULL" in stmt.sql
    db = _db()
    db.execute("INSERT INTO outbox (id, state, batch_id, attempts) VALUES (1, 'sent', 'b1', 0), (2, 'sent', 'b2', 0)")
    db.execute(stmt.sql, ("b1",))
    assert db.execute("SELECT id, state, batch_id, attempts FROM outbox ORDER BY id").fetchall() == [
        (1, "pending", None, 1), (2, "sent", "b2", 0),
    ]


def test_in_list_expands_to_the_given_count() -> None:
    stmt = prepare(select(outbox.c.id).where(outbox.c.state == "pending", outbox.c.id.in_(bindparam("ids", expanding=True))))
    assert stmt.params == ("ids",)
    db = _db()
    db.executemany("INSERT INTO outbox (id, state) VALUES (?, 'pending')", [(i,) for i in range(1, 6)])
    assert db.execute(stmt.sql_for(3), (2, 4, 9)).fetchall() == [(2,), (4,)]


def test_set_clause_follows_the_table_not_the_values_order() -> None:
    # Why each row NamedTuple is checked against its statement at import: SQLAlchemy orders SET by
    # the table's columns, so a tuple in the order the values were written would bind wrongly.
    stmt = prepare(update(outbox).where(outbox.c.id == bindparam("oid")).values(state=bindparam("st"), op=bindparam("o")))
    assert stmt.params == ("o", "st", "oid")


def test_a_string_constant_with_a_quote_is_escaped() -> None:
    stmt = prepare(insert(outbox).values(source="it's", record_key=bindparam("k")))
    db = _db()
    db.execute(stmt.sql, ("k1",))
    assert db.execute("SELECT source, record_key FROM outbox").fetchall() == [("it's", "k1")]


def test_two_in_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="one IN list"):
        prepare(select(outbox.c.id).where(
            outbox.c.id.in_(bindparam("a", expanding=True)), outbox.c.seq.in_(bindparam("b", expanding=True))
        ))
