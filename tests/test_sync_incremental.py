"""Incremental syncs: deletes found by comparing sorted key lists, unchanged rows recognised by their raw digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.mappings.compile import CompiledMapping
from gateway.store import open_store
from gateway.store.db import LATEST, current_version
from gateway.store.fingerprints import _LIVE_KEY_TEXT
from gateway.store.tables import fingerprints
from gateway.sync import keyset, sync_one, sync_source
from gateway.sync.pipeline import compile_for
from gateway.sync.rowhash import inputs_digest
from tests.test_sync_pipeline import (
    STOCK_MAPPING,
    kc,
    kc_row,
    max_outbox_id,
    outbox_rows,
    seed_source,
    source_entry,
    write_config,
)

# Keys whose byte order differs from a locale's order and from numeric order.
TEXT_KEYS = ["a10", "a9", "B", "b", "Z1", "中国", "仓库", "ä", "a|b", "10", "9", "", " x"]


def text_keyed(url: str) -> sa.Engine:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS kt")
        c.exec_driver_sql("CREATE TABLE kt (code text PRIMARY KEY, wzbm text, ckbm text, sl text, hcrq date, updated_at timestamp)")
        for i, k in enumerate(TEXT_KEYS):
            r = kc_row(i + 1)
            c.exec_driver_sql(
                "INSERT INTO kt VALUES (%(k)s, %(w)s, %(c)s, %(s)s, %(d)s, %(u)s)",
                {"k": k, "w": f"WZ{i}", "c": "CK1", "s": r["sl"], "d": r["hcrq"], "u": r["updated_at"]},
            )
    return eng


TEXT_MAPPING = STOCK_MAPPING.replace('batch_no = { template = "P{id}" }', 'batch_no = { template = "P{code}" }')


def test_deletes_of_text_keys_are_found_by_the_key_set_anti_join(pg_url: str, tmp_path: Path) -> None:
    src = text_keyed(pg_url)
    entry = source_entry("kt", pg_url, "cursor", reconcile_deletes=True, settings={"table": "kt", "key_columns": ["code"]})
    cfg = write_config(tmp_path, [entry], mapping=TEXT_MAPPING)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kt", store).new == len(TEXT_KEYS)
    gone = ["a9", "中国", "", "a|b"]
    with src.begin() as c:
        c.exec_driver_sql("DELETE FROM kt WHERE code = ANY(%(k)s)", {"k": gone})
    from gateway.sync.pipeline import open_adapter

    with open_adapter(cfg, cfg.source("kt")) as a, store.connect() as conn:
        assert a.key_array() is not None, "PostgreSQL keys are read through ADBC"
        assert sorted(keyset.reconcile(a, conn, "kt").gone) == sorted(gone)
    mark = max_outbox_id(store)
    s = sync_source(cfg, "kt", store)
    assert (s.new, s.changed, s.deleted) == (0, 0, len(gone))
    deleted = {json.loads(r.provenance)["source_key"] for r in outbox_rows(store, mark) if r.op == "delete"}
    assert deleted == set(gone)
    assert sync_source(cfg, "kt", store).deleted == 0, "a second run finds nothing more"
    src.dispose()


def test_a_composite_key_is_reconciled_by_the_same_anti_join(pg_url: str, tmp_path: Path) -> None:
    entry = source_entry("kc", pg_url, "cursor", reconcile_deletes=True, settings={"key_columns": ["id", "ckbm"]})
    cfg = write_config(tmp_path, [entry])
    src = seed_source(pg_url, 40)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kc", store).new == 40
    with src.begin() as c:
        c.execute(kc.delete().where(kc.c.id.in_([3, 17])))
    from gateway.sync.pipeline import open_adapter

    with open_adapter(cfg, cfg.source("kc")) as a, store.connect() as conn:
        assert sorted(keyset.reconcile(a, conn, "kc").gone) == ["17|CK3", "3|CK3"]
    assert sync_source(cfg, "kc", store).deleted == 2
    src.dispose()


def test_the_arrow_key_set_equals_the_row_read_keys(pg_url: str) -> None:
    """key_array() against keys() (str of each value psycopg gives), for every kind of key column:
    integers and text formatted by Arrow, a date and a numeric through their Python values, NULLs."""
    from gateway.adapters.sql import SqlAdapter

    eng = sa.create_engine(pg_url)
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE k (i int8, t text, d date, n numeric(10, 2), b int2)")
        c.exec_driver_sql(
            "INSERT INTO k VALUES (1, 'a', '2024-01-02', 1.50, 1), (-7, '中|国', NULL, 0, NULL), "
            "(NULL, NULL, '1999-12-31', NULL, 3), (9007199254740993, '', '2024-01-02', -12.34, -1)"
        )
    for cols in (["i"], ["t"], ["d"], ["n"], ["i", "t"], ["b", "d", "n"]):
        with SqlAdapter("k", {"url": pg_url, "table": "k", "key_columns": cols}) as a:
            got = a.key_array()
            assert got is not None
            assert sorted(got.to_pylist()) == sorted(a.keys()), cols
    eng.dispose()


def test_sources_without_an_arrow_key_read_gather_their_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "cursor", reconcile_deletes=True)])
    src = seed_source(url, 30)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kc", store).new == 30
    with src.begin() as c:
        c.execute(kc.delete().where(kc.c.id.in_([1, 30])))
    from gateway.sync.pipeline import open_adapter

    with open_adapter(cfg, cfg.source("kc")) as a, store.connect() as conn:
        assert a.key_array() is None
        assert sorted(keyset.reconcile(a, conn, "kc").gone) == ["1", "30"]
    assert sync_source(cfg, "kc", store).deleted == 2
    src.dispose()


def test_stored_keys_holding_a_newline_are_read_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.store import fingerprints as fingerprints_store
    from gateway.store.fingerprints import live_source_keys
    from gateway.sync.changes import ChangeWriter, Mapped

    eng = open_store(tmp_path / "state.db")
    keys = ["a\nb", "a", "b", "", "x\n"]
    with eng.begin() as c:
        ChangeWriter("s", "stock", 1, "t").write(c, [Mapped(k, f"r{i}", {"n": i}) for i, k in enumerate(keys)])
        ChangeWriter("other", "stock", 1, "t").write(c, [Mapped("z", "z", {"n": 0})])
    monkeypatch.setattr(keyset, "GATHER", 2)  # several slices
    for piece in (1, 2, 3, 100):  # stored keys read this many at a time
        monkeypatch.setattr(fingerprints_store, "LIVE_KEY_PIECE", piece)
        with eng.connect() as c:
            assert sorted(live_source_keys(c, "s").to_pylist()) == sorted(keys), piece
            assert sorted(keyset.missing(live_source_keys(c, "s"), keyset.gather(iter(["a", "x\n", "zz"])))) == ["", "a\nb", "b"]
            assert live_source_keys(c, "nothing").to_pylist() == []
    eng.dispose()


def test_the_anti_join_by_slices_names_what_one_set_difference_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """missing() and present() probe one slice of the source's keys at a time: the same keys come out
    whatever the slice size, the chunking, duplicates or empty chunks."""
    import random

    import pyarrow as pa

    rng = random.Random(7)
    stored = [str(i) for i in range(500)] + ["", "中|国", "a\nb"]
    source = [k for k in stored if rng.random() < 0.7] + [str(i) for i in range(900, 950)] + ["1", "1", ""]
    rng.shuffle(source)
    want = sorted(set(stored) - set(source))
    for probe, passes in ((1, 1), (3, 2), (7, 16), (1000, 16)):
        monkeypatch.setattr(keyset, "PROBE_KEYS", probe)
        monkeypatch.setattr(keyset, "PASSES", passes)
        for cut in (1, 10, 64, len(source)):
            chunks = [source[i:i + cut] for i in range(0, len(source), cut)]
            current = pa.chunked_array([[], *chunks, []], pa.string())
            assert sorted(keyset.missing(pa.array(stored, pa.string()), current)) == want, (probe, passes, cut)
            ks = keyset.KeySet(current, want)
            assert ks.present(stored) == set(stored) & set(source)
    assert keyset.missing(pa.array([], pa.string()), pa.chunked_array([["a"]])) == []
    assert keyset.missing(pa.array(["a"], pa.string()), pa.chunked_array([], pa.string())) == ["a"]


def _count_mapped(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows mapped, by either path (map_batch on the bulk path, map_row on the row path)."""
    calls = [0]
    real_row, real_batch = CompiledMapping.map_row, CompiledMapping.map_batch

    def counting_row(self, row):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real_row(self, row)

    def counting_batch(self, batch):  # type: ignore[no-untyped-def]
        calls[0] += len(batch)
        return real_batch(self, batch)

    monkeypatch.setattr(CompiledMapping, "map_row", counting_row)
    monkeypatch.setattr(CompiledMapping, "map_batch", counting_batch)
    return calls


def test_fingerprint_rerun_maps_only_changed_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")])
    src = seed_source(url, 60)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kc", store).new == 60
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id.in_([4, 9])).values(sl="777箱"))
        c.execute(kc.delete().where(kc.c.id == 30))
    calls = _count_mapped(monkeypatch)
    s = sync_source(cfg, "kc", store)
    assert (s.new, s.changed, s.deleted, s.unchanged) == (0, 2, 1, 57)
    assert calls[0] == 2, "only the two edited rows are mapped and validated"
    with store.connect() as c:
        unhashed = c.execute(sa.select(sa.func.count()).select_from(fingerprints).where(
            fingerprints.c.deleted == 0, fingerprints.c.row_hash.is_(None))).scalar()
    assert unhashed == 0
    src.dispose()


def test_a_per_record_change_then_a_revert_is_still_sent(tmp_path: Path) -> None:
    """sync_one writes a version without a raw digest: the stored digest must not vouch for it."""
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")])
    src = seed_source(url, 10)
    store = open_store(cfg.state_path)
    sync_source(cfg, "kc", store)
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 5).values(sl="1234箱"))
    assert sync_one(cfg, "kc", "5", store).op == "upsert"
    with src.begin() as c:  # back to what the last full sync saw
        c.execute(kc.update().where(kc.c.id == 5).values(sl=kc_row(5)["sl"]))
    mark = max_outbox_id(store)
    s = sync_source(cfg, "kc", store)
    assert (s.changed, s.unchanged) == (1, 9)
    (row,) = outbox_rows(store, mark)
    assert json.loads(row.data)["quantity"] == 5 and row.seq == 3
    src.dispose()


def test_a_changed_lookup_csv_remaps_every_row(tmp_path: Path) -> None:
    (tmp_path / "depots.csv").write_text("old,new\nCK1,D1\n", encoding="utf-8")
    mapping = STOCK_MAPPING.replace(
        'depot_id = { column = "ckbm" }',
        'depot_id = { column = "ckbm", transforms = [{lookup = {csv = "depots.csv", key = "old", value = "new", missing = "keep"}}] }',
    )
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")], mapping=mapping)
    src = seed_source(url, 14)
    store = open_store(cfg.state_path)
    sc = cfg.source("kc")
    before = inputs_digest(cfg, sc, compile_for(cfg, sc, store))
    assert sync_source(cfg, "kc", store).new == 14
    (tmp_path / "depots.csv").write_text("old,new\nCK1,D1X\n", encoding="utf-8")
    assert inputs_digest(cfg, sc, compile_for(cfg, sc, store)) != before
    s = sync_source(cfg, "kc", store)
    ck1 = sum(1 for i in range(1, 15) if i % 7 == 1)
    # The depot is part of the stock key: the CK1 records move to new keys.
    assert (s.new, s.deleted, s.unchanged) == (ck1, ck1, 14 - ck1)
    src.dispose()


def test_a_lookup_from_another_source_gets_no_digest(tmp_path: Path) -> None:
    mapping = STOCK_MAPPING.replace(
        'depot_id = { column = "ckbm" }',
        'depot_id = { column = "ckbm", transforms = [{lookup = {source = "other", key = "a", value = "b"}}] }',
    )
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")], mapping=mapping)
    sc = cfg.source("kc")
    fake = CompiledMapping(record_type="stock", fields=(), source_fields=frozenset(), text=mapping, version=1)
    assert inputs_digest(cfg, sc, fake) is None


def test_a_v1_store_gains_row_hash_and_the_covering_key_index(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    eng = open_store(path)
    with eng.begin() as c:  # what a store made before version 2 looks like
        c.exec_driver_sql("ALTER TABLE fingerprints DROP COLUMN row_hash")
        c.exec_driver_sql("DROP INDEX ix_fingerprints_source_key")
        c.exec_driver_sql("CREATE INDEX ix_fingerprints_source_key ON fingerprints (source, source_key)")
        c.exec_driver_sql("DROP INDEX ix_receipts_outbox")
        c.exec_driver_sql("DROP TABLE current_problems")
        c.exec_driver_sql("ALTER TABLE users DROP COLUMN must_change_password")
        c.exec_driver_sql("ALTER TABLE outbox_batches DROP COLUMN first_id")
        c.exec_driver_sql("ALTER TABLE outbox_batches DROP COLUMN last_id")
        c.exec_driver_sql("ALTER TABLE fingerprints DROP COLUMN outbox_id")
        c.exec_driver_sql("ALTER TABLE outbox DROP COLUMN prev_id")
        c.exec_driver_sql("CREATE INDEX ix_outbox_record ON outbox (record_type, record_key)")
        c.exec_driver_sql("DELETE FROM schema_version WHERE version > 1")
    eng.dispose()
    eng = open_store(path)
    with eng.connect() as c:
        assert current_version(c) == LATEST == 8
        assert {"first_id", "last_id"} <= {col["name"] for col in sa.inspect(c).get_columns("outbox_batches")}
        assert c.dialect.has_table(c, "current_problems")
        assert "must_change_password" in {col["name"] for col in sa.inspect(c).get_columns("users")}
        plan = c.exec_driver_sql("EXPLAIN QUERY PLAN SELECT * FROM receipts WHERE outbox_id IN (1, 2)").all()
        assert "ix_receipts_outbox" in str(plan), "a per-record push's receipts are found by index, not a table scan"
        assert "row_hash" in {col["name"] for col in sa.inspect(c).get_columns("fingerprints")}
        ix = [r[2] for r in c.exec_driver_sql("PRAGMA index_info(ix_fingerprints_source_key)")]
        assert ix == ["source", "source_key", "deleted"]
        for after, params in ((False, ("s", 10)), (True, ("s", "k", 10))):
            plan = c.exec_driver_sql("EXPLAIN QUERY PLAN " + _LIVE_KEY_TEXT[after].sql, params).all()
            assert "COVERING INDEX" in str(plan), "the live key list is read from the index alone"
            assert "TEMP B-TREE" not in str(plan), "in index order, not sorted"
    eng.dispose()


def test_lookups_by_source_key_use_the_source_key_index(tmp_path: Path) -> None:
    """A planner choice, not a timing: by the unique (record_type, record_key) index these walk every record."""
    from gateway.sync.changes import ChangeWriter, Mapped

    eng = open_store(tmp_path / "state.db")
    w = ChangeWriter("kc", "stock", 1, "t")
    seen: list[str] = []
    with eng.begin() as c:
        w.write(c, [Mapped(str(i), f"r{i}", {"n": i}) for i in range(5)])
        c.connection.driver_connection.set_trace_callback(seen.append)
        w.row_hashes(c, ["1", "2"])
        w.delete_source_keys(c, ["3"])
        w.write(c, [Mapped("4", "r4-moved", {"n": 4})])  # a changed key: looks for the record it moved from
        c.connection.driver_connection.set_trace_callback(None)
        by_source_key = [q for q in seen if q.lstrip().startswith("SELECT") and "source_key IN" in q]
        assert len(by_source_key) >= 3
        for q in by_source_key:
            plan = str(c.exec_driver_sql("EXPLAIN QUERY PLAN " + q).all())
            assert "ix_fingerprints_source_key" in plan, (q, plan)


def test_a_pass_reads_the_stored_digests_exactly(tmp_path: Path) -> None:
    """live_digests: every live record of the source and type, keys with newlines, records without a
    digest or with one of another length (null: never taken as unchanged), over several rowid ranges."""
    from gateway.store.fingerprints import _LIVE_DIGEST_TEXT, live_digests
    from gateway.sync.changes import ChangeWriter, Mapped

    eng = open_store(tmp_path / "state.db")
    keys = [f"k{i}" for i in range(40)] + ["a\nb", "", "x\n"]
    digest = {k: bytes([i]) * 16 for i, k in enumerate(keys)}
    digest["k3"], digest["k4"] = None, b"short"  # type: ignore[assignment]
    with eng.begin() as c:
        ChangeWriter("s", "stock", 1, "t").write(c, [Mapped(k, f"r{i}", {"n": i}, row_hash=digest[k]) for i, k in enumerate(keys)])
        ChangeWriter("other", "stock", 1, "t").write(c, [Mapped("z", "z", {"n": 0}, row_hash=b"z" * 16)])
        ChangeWriter("s", "stock", 1, "t").delete_source_keys(c, ["k7"])
    want = {k: (h if h is not None and len(h) == 16 else None) for k, h in digest.items() if k != "k7"}
    with eng.connect() as c:
        for span in (7, 65536):
            k, d = live_digests(c, "s", "stock", span)
            assert dict(zip(k.to_pylist(), d.to_pylist(), strict=True)) == want and len(k) == len(want)
        assert [len(a) for a in live_digests(c, "s", "material")] == [0, 0]
        plan = str(c.exec_driver_sql("EXPLAIN QUERY PLAN " + _LIVE_DIGEST_TEXT.sql, (0, 10, "s", "stock")).all())
        assert "INTEGER PRIMARY KEY" in plan, plan  # the rowid range, not a walk of the whole type per range
    eng.dispose()


def test_pass_digests_decide_as_the_fresh_lookup_does() -> None:
    """PassDigests.compare == batchstep.changed_rows on the same stored state, a key stored twice is never
    unchanged, a key whose record was rewritten is compared no more, and the uncovered keys are gone."""
    import pyarrow as pa

    from gateway.adapters.batches import RowBatch
    from gateway.sync.batchstep import changed_rows
    from gateway.sync.passdigests import PassDigests

    stored = {f"k{i}": bytes([i]) * 16 for i in range(30)}
    keys = list(stored) + ["k5"]  # k5 stored twice: two live records of one row
    digests = [stored[k] for k in keys]
    pd = PassDigests(pa.array(keys, pa.string()), pa.array(digests, pa.binary(16)))
    batch_keys = ["k3", "k5", "new", "k9", "k12", "k4", ""]
    got = [stored.get(k, b"?" * 16) for k in batch_keys]
    got[3] = b"!" * 16  # k9 changed
    batch = RowBatch.from_columns(["x"], [[0] * len(batch_keys)], batch_keys, [""] * len(batch_keys), [None] * len(batch_keys))
    have = {k: (f"r{k}", h) for k, h in stored.items() if k != "k5"}  # changed_rows's lookup leaves out keys with two records
    want_changed, want_same = changed_rows(batch, got, have)
    changed, same = pd.compare(batch_keys, got)
    assert (changed, same) == (want_changed, [i for i, _ in want_same])
    assert [batch_keys[i] for i in same] == ["k3", "k12", "k4"]
    pd.committed(["k12"])  # another row took k12's record over
    assert pd.compare(["k3", "k12", "k9"], [stored["k3"], stored["k12"], b"!" * 16]) == ([1, 2], [0])
    pd.committed([])
    assert pd.compare(["k9"], [b"!" * 16]) == ([0], [])  # k9 was mapped: its stored digest is stale
    assert sorted(pd.gone()) == sorted(set(stored) - {"k3", "k5", "k9", "k12", "k4"})
