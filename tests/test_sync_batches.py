"""The sync on RowBatches gives what the row-by-row sync gives, and never takes a changed row for unchanged.

The batch path (gateway/sync/batchstep.py BATCHES: fetch_batches, one digest column
per Arrow batch, map_batch) is run against the row path (ROWS: fetch(), row_hash and
map_row per row) over the same source history, for an adapter with the default
fetch_batches (batches of dicts) and for one whose fetch_batches yields Arrow
(RowBatch.from_arrow), on real SQLite sources and state stores.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from gateway.adapters.base import Adapter, Position
from gateway.adapters.batches import RowBatch
from gateway.adapters.sql import SqlAdapter
from gateway.store import open_store
from gateway.store.tables import current_problems, fingerprints, outbox
from gateway.sync import batchstep, pipeline, sync_source
from gateway.sync.arrowhash import batch_digests
from tests.test_sync_pipeline import STOCK_MAPPING, T0, kc, kc_row, seed_source, source_entry, write_config


@pytest.fixture(autouse=True)
def _map_batch_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tables are small: without this the batch path would map their few rows by map_row."""
    monkeypatch.setattr(batchstep, "ROW_MAP_BELOW", 0)

N = 300
LATER = T0 + dt.timedelta(days=1)


def arrow_fetch_batches(self: SqlAdapter, position: Position | None, size: int = 2000) -> Iterator[Any]:
    """A columnar adapter's fetch_batches: each batch's values handed over as Arrow, keys and the rest alike."""
    for e in Adapter.fetch_batches(self, position, size):
        if isinstance(e, RowBatch):
            e = RowBatch.from_arrow(pa.RecordBatch.from_pylist(e.dicts()), e.keys, e.locators, e.versions)
        yield e


def history(tmp: Path, strategy: str) -> list[dict[str, Any]]:
    """Five syncs of one source: first load with bad rows; inserts, updates, deletes and a bad row fixed and
    another broken; a mapping change; nothing changed; then a source row whose key fields change.
    Returns what each sync stored and reported."""
    url = f"sqlite:///{tmp / 'src.db'}"
    extra = {"reconcile_deletes": True} if strategy == "cursor" else {}
    cfg = write_config(tmp, [source_entry("kc", url, strategy, **extra)])
    src = seed_source(url, N)
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id.in_([5, 77])).values(sl="很多"))  # not a number
        c.execute(kc.update().where(kc.c.id == 9).values(dw=None))  # the default unit
    store = open_store(cfg.state_path)
    out = [stored(store, sync_source(cfg, "kc", store))]

    with src.begin() as c:
        c.execute(
            kc.update().where(kc.c.id == sa.bindparam("k")).values(sl=sa.bindparam("sl"), updated_at=sa.bindparam("at")),
            [{"k": i, "sl": f"{i + 1000}箱", "at": LATER + dt.timedelta(microseconds=i)} for i in range(10, 40)],
        )
        c.execute(kc.update().where(kc.c.id == 5).values(sl="7箱", updated_at=LATER))  # fixed
        c.execute(kc.update().where(kc.c.id == 50).values(sl="不详", updated_at=LATER))  # broken
        c.execute(kc.insert(), [kc_row(i, LATER) for i in range(N + 1, N + 21)])
        c.execute(kc.delete().where(kc.c.id.in_(range(100, 110))))
    out.append(stored(store, sync_source(cfg, "kc", store)))

    (tmp / "stock.toml").write_text(
        STOCK_MAPPING.replace('unit = { column = "dw", default = "箱" }', 'unit = { column = "dw", default = "件" }').replace(
            'depot_id = { column = "ckbm" }', 'depot_id = { column = "ckbm", transforms = [{map = {values = {CK3 = "CK3A"}, other = "keep"}}] }'
        ),
        encoding="utf-8",
    )
    out.append(stored(store, sync_source(cfg, "kc", store)))
    out.append(stored(store, sync_source(cfg, "kc", store)))

    with src.begin() as c:  # a key field edited: the old record goes, a new one comes
        c.execute(kc.update().where(kc.c.id == 200).values(wzbm="WZ999", updated_at=LATER + dt.timedelta(hours=1)))
    out.append(stored(store, sync_source(cfg, "kc", store)))
    src.dispose()
    store.dispose()
    return out


def stored(store: sa.Engine, s: Any) -> dict[str, Any]:
    """A sync's summary and the store's outbox, fingerprints and listed problems after it, without the
    clock's stamps and the raw digests (each path keeps its own; they only decide what is mapped)."""
    with store.connect() as c:
        ob = c.execute(
            sa.select(outbox.c.record_key, outbox.c.op, outbox.c.seq, outbox.c.version, outbox.c.data,
                      outbox.c.updated_at, outbox.c.provenance, outbox.c.state).order_by(outbox.c.id)
        ).all()
        fp = c.execute(
            sa.select(fingerprints.c.record_key, fingerprints.c.source_key, fingerprints.c.version, fingerprints.c.seq,
                      fingerprints.c.deleted, fingerprints.c.mapping_version, fingerprints.c.updated_at)
            .order_by(fingerprints.c.record_key)
        ).all()
        cp = c.execute(
            sa.select(current_problems.c.source_key, current_problems.c.locator, current_problems.c.record_key,
                      current_problems.c.field, current_problems.c.value, current_problems.c.rule,
                      current_problems.c.message, current_problems.c.mapped)
            .order_by(current_problems.c.source_key, current_problems.c.field)
        ).all()
        digests = {h for (h,) in c.execute(sa.select(fingerprints.c.row_hash)) if h is not None}
    counts = {k: v for k, v in s.as_dict().items() if k not in ("seconds", "run_id")}
    return {"summary": counts, "outbox": [tuple(r) for r in ob], "fingerprints": [tuple(r) for r in fp],
            "problems": [tuple(r) for r in cp], "digests": digests}


@pytest.mark.parametrize("chunks", ["default", "small"])
@pytest.mark.parametrize("adapter", ["dicts", "arrow"])
@pytest.mark.parametrize("strategy", ["cursor", "fingerprint"])
def test_batch_path_stores_what_the_row_path_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, adapter: str, chunks: str,
) -> None:
    if adapter == "arrow":
        monkeypatch.setattr(SqlAdapter, "fetch_batches", arrow_fetch_batches)
    if chunks == "small":  # several chunks per sync; a fingerprint pass's long chunks of several batches each
        monkeypatch.setattr(pipeline, "COMMIT_ROWS", 50)
        monkeypatch.setattr(pipeline, "FULL_PASS_ROWS", 120)
    monkeypatch.setattr(batchstep, "PATH", batchstep.ROWS)
    (tmp_path / "rows").mkdir()
    want = history(tmp_path / "rows", strategy)
    monkeypatch.setattr(batchstep, "PATH", batchstep.BATCHES)
    (tmp_path / "batches").mkdir()
    got = history(tmp_path / "batches", strategy)

    # A delete's updated_at is the time it was enqueued, and so is every record's without a cursor column.
    for run in want + got:
        run["outbox"] = [r[:5] + (None if strategy == "fingerprint" or r[1] == "delete" else r[5],) + r[6:] for r in run["outbox"]]
    def in_order(outbox: list[Any]) -> list[Any]:
        if chunks == "small" and strategy == "fingerprint":
            # The pass commits 120 rows at a time, the row path 50: a chunk enqueues its moved records'
            # deletes before its upserts, so the two interleave differently; each record's sequence is the same.
            return sorted(outbox, key=lambda r: (r[0], r[2]))
        return outbox

    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        assert in_order(g["outbox"]) == in_order(w["outbox"]), f"sync {i + 1}: outbox differ"
        for part in ("summary", "fingerprints", "problems"):
            assert g[part] == w[part], f"sync {i + 1}: {part} differ"
    # Each path kept its own digests: the batch path digests the batches' exact Arrow form (both the
    # SQL adapter's own columnar batches and the Arrow ones here have one), another encoding of the same rows.
    assert want[0]["digests"] != got[0]["digests"]
    # The history did what it says: every kind of change, rejections, a mapping change.
    first, churn, remap, quiet, moved = (r["summary"] for r in want)
    assert (first["new"], first["rejected"]) == (N - 2, 2)
    assert (churn["new"], churn["changed"], churn["deleted"]) == (21, 30, 10) and churn["rejected"] >= 1
    assert remap["mapping_version"] == 2 and remap["changed"] > 0 and remap["deleted"] > 0
    assert (quiet["new"], quiet["changed"], quiet["deleted"]) == (0, 0, 0)
    assert (moved["new"], moved["deleted"]) == (1, 1)
    assert {p[3] for p in want[1]["problems"]} == {"quantity"}
    assert json.loads(want[2]["outbox"][-1][6])["mapping_version"] == 2


TYPES: dict[str, tuple[pa.DataType, Any, list[Any]]] = {
    # column: (Arrow type, the base row's value, single-value changes to try)
    "i": (pa.int64(), 7, [8, -7, 0, None, 2**62]),
    "small": (pa.int16(), 1, [2, None, -1]),
    "f": (pa.float64(), 1.5, [1.25, 0.0, -0.0, float("inf"), None, 1.5000000000000002]),
    "s": (pa.string(), "箱", ["件", "", " 箱", "箱 ", None, "箱\x00"]),
    "b": (pa.bool_(), True, [False, None]),
    "d": (pa.date32(), dt.date(2024, 3, 1), [dt.date(2024, 3, 2), dt.date(1970, 1, 1), None]),
    "t": (pa.timestamp("us"), dt.datetime(2024, 3, 1, 8), [dt.datetime(2024, 3, 1, 8, 0, 0, 1), None]),
    "tz": (pa.timestamp("us", "Asia/Shanghai"), dt.datetime(2024, 3, 1, tzinfo=dt.UTC), [dt.datetime(2024, 3, 1, 0, 0, 1, tzinfo=dt.UTC), None]),
    "dec": (pa.decimal128(10, 2), decimal.Decimal("1.50"), [decimal.Decimal("1.51"), decimal.Decimal("-1.50"), decimal.Decimal("0.00"), None]),
    "raw": (pa.binary(), b"\x01\x02", [b"\x01", b"\x01\x02\x00", b"", None]),
    "n": (pa.null(), None, []),
}


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    schema = pa.schema([(name, t) for name, (t, _, _) in TYPES.items()])
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def test_a_single_changed_value_of_any_type_changes_the_arrow_digest() -> None:
    base = {name: v for name, (_, v, _) in TYPES.items()}
    variants = [base] + [{**base, name: x} for name, (_, _, xs) in TYPES.items() for x in xs]
    digests = batch_digests(_batch(variants), b"inputs")
    assert digests is not None and len(set(digests)) == len(variants), "every variant digests apart from every other"
    # A value moving to the next column ("a", "") vs ("", "a") and the same rows in another batch.
    pair = pa.RecordBatch.from_pylist([{"x": "a", "y": ""}, {"x": "", "y": "a"}])
    assert len(set(batch_digests(pair, b"k") or [])) == 2
    again = batch_digests(_batch(list(reversed(variants))), b"inputs")
    assert again == list(reversed(digests)), "a row's digest does not depend on its neighbours"
    assert batch_digests(_batch(variants), b"other inputs") != digests, "the mapping inputs key the digests"
    # The same values under another type (int32 for int64) are another row: mapped again, not trusted.
    retyped = pa.RecordBatch.from_pylist([{"i": 7}], schema=pa.schema([("i", pa.int32())]))
    assert batch_digests(retyped, b"k") != batch_digests(pa.RecordBatch.from_pylist([{"i": 7}]), b"k")


def test_a_type_without_a_canonical_encoding_falls_back_to_the_row_digest() -> None:
    nested = pa.RecordBatch.from_pylist([{"tags": ["a", "b"]}])
    assert batch_digests(nested, b"k") is None
    batch = RowBatch.from_arrow(nested, ["1"], ["row 1"], [None])
    from gateway.sync.rowhash import row_hash

    assert batchstep.BATCHES.digests(batch, b"k") == [row_hash({"tags": ["a", "b"]}, b"k")]


def test_row_hashes_are_row_hash_of_each_row() -> None:
    from gateway.sync.rowhash import row_hash, row_hashes

    rows = [{"i": i, "s": f"箱{i}", "d": dt.date(2024, 3, 1), "dec": decimal.Decimal(i) / 4, "b": b"\x00", "n": None} for i in range(50)]
    assert row_hashes(rows, b"inputs") == [row_hash(r, b"inputs") for r in rows]


TYPED = sa.MetaData()
typed = sa.Table(
    "typed", TYPED,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("wzbm", sa.String(32)),
    sa.Column("ckbm", sa.String(32)),
    sa.Column("sl", sa.Float),
    sa.Column("dw", sa.String(10)),
    sa.Column("hcrq", sa.Date),
    sa.Column("note", sa.String(40)),
    sa.Column("flag", sa.Boolean),
    sa.Column("amount", sa.Numeric(10, 2)),
    sa.Column("updated_at", sa.DateTime),
)


@pytest.mark.parametrize("adapter", ["dicts", "arrow"])
def test_a_row_with_one_value_changed_is_mapped_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adapter: str) -> None:
    """Every column of every type, edited in one row each (values the mapping ignores too): those rows are
    mapped again (their stored raw digest is replaced), the others are only marked seen."""
    if adapter == "arrow":
        monkeypatch.setattr(SqlAdapter, "fetch_batches", arrow_fetch_batches)
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint", settings={"table": "typed"})])
    src = sa.create_engine(url)
    TYPED.create_all(src)

    def row(i: int) -> dict[str, Any]:
        return {"id": i, "wzbm": f"WZ{i:03d}", "ckbm": "CK1", "sl": 2.5, "dw": "箱", "hcrq": dt.date(2024, 3, 1),
                "note": "备注", "flag": True, "amount": decimal.Decimal("1.50"), "updated_at": T0}

    with src.begin() as c:
        c.execute(typed.insert(), [row(i) for i in range(1, 41)])
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kc", store).new == 40

    def digests() -> dict[str, bytes]:
        with store.connect() as c:
            return {k: h and bytes(h) for k, h in c.execute(sa.select(fingerprints.c.source_key, fingerprints.c.row_hash))}

    before = digests()
    assert len(before) == 40 and all(before.values())
    edits = {
        2: {"wzbm": "WZ002 "}, 3: {"ckbm": None}, 4: {"sl": 2.51}, 5: {"sl": 0.0}, 6: {"dw": "件"}, 7: {"hcrq": dt.date(2024, 3, 2)},
        8: {"hcrq": None}, 9: {"note": "备注 "}, 10: {"note": None}, 11: {"flag": False}, 12: {"flag": None},
        13: {"amount": decimal.Decimal("1.51")}, 14: {"amount": None}, 15: {"updated_at": T0 + dt.timedelta(microseconds=1)},
        16: {"updated_at": None}, 17: {"note": ""},
    }
    with src.begin() as c:
        for i, values in edits.items():
            c.execute(typed.update().where(typed.c.id == i).values(**values))
    s = sync_source(cfg, "kc", store)
    after = digests()
    remapped = {k for k in before if after.get(k) != before[k]}
    # Row 8 lost its checked date: mapped and refused, its record keeps the old digest. Row 3 lost its depot
    # (a key field): its record moves to a new key. The other edited rows store their new digest, changed or not.
    assert remapped == {str(i) for i in edits} - {"8"}, "exactly the edited rows are mapped again: " + ",".join(sorted(remapped))
    assert s.rejected == 1 and (s.problems[0].field, s.problems[0].rule) == ("checked_date", "required")
    assert (s.rows_read, s.new, s.deleted, s.unchanged) == (40, 1, 1, 40 - 2 - 4)
    src.dispose()


@pytest.mark.parametrize("path", ["rows", "batches"])
@pytest.mark.parametrize(("chunk", "commits"), [(2000, [2000, 4000, 4500]), (3000, [2000, 3000, 4500]), (700, [700, 1400, 2100, 2800, 3500, 4200, 4500])])
def test_a_commit_per_checkpoint_and_at_most_commit_rows_rows_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, chunk: int, commits: list[int],
) -> None:
    """progress() is told the rows read at every commit: a source checkpointing every 2000 rows commits once per
    checkpoint (rows and position together), one checkpointing less often commits every COMMIT_ROWS rows too."""
    monkeypatch.setattr(batchstep, "PATH", batchstep.ROWS if path == "rows" else batchstep.BATCHES)
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "cursor", settings={"chunk_size": chunk})])
    seed_source(url, 4500).dispose()
    seen: list[int] = []
    s = sync_source(cfg, "kc", open_store(cfg.state_path), progress=seen.append)
    assert s.new == 4500
    assert seen == commits + [4500], "the last commit ends the run (deletes, completeness)"


def test_a_few_changed_rows_are_mapped_row_by_row_with_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchPath.map below ROW_MAP_BELOW rows takes map_row: the outbox holds what map_batch gives."""
    stored = []
    for below in (0, 10_000):
        monkeypatch.setattr(batchstep, "ROW_MAP_BELOW", below)
        url = f"sqlite:///{tmp_path / f'src{below}.db'}"
        (tmp_path / str(below)).mkdir()
        cfg = write_config(tmp_path / str(below), [source_entry("kc", url, "fingerprint")])
        seed_source(url, 50).dispose()
        store = open_store(cfg.state_path)
        assert sync_source(cfg, "kc", store).new == 50
        with store.connect() as c:
            stored.append(c.execute(sa.select(outbox.c.record_key, outbox.c.version, outbox.c.data).order_by(outbox.c.record_key)).all())
        store.dispose()
    assert stored[0] == stored[1]
