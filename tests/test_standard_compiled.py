"""The compiled validation fast path gives exactly what normalize() gives, on generated good and bad records.

The hub validates every record it receives through `gateway.standard.compiled`
and `gateway.protocol.batch.envelope_ok`; these tests compare them, record by
record, with the full routes (`normalize`, `record_problems`) and compare the
hub's `check_records` with the route it had before the fast path.
"""

from __future__ import annotations

import copy
import random
from datetime import date
from typing import Any

import pytest

from gateway.hub.ingest import ENVELOPE_LABELS, check_records, reason
from gateway.protocol.batch import envelope_ok, record_problems
from gateway.standard.compiled import MAX_SHAPES, fast_normalize, normalize_checked, validator
from gateway.standard.schema import RECORD_TYPES, record_key
from gateway.standard.validate import ValidationContext, normalize
from tests.fixtures.hub import record, sample

TODAY = date(2026, 6, 1)
CTX = ValidationContext(today=TODAY)

# Values of every kind the schema's fields take, valid for some field and wrong for others.
POOL: list[Any] = [
    None, "", "   ", " 折叠床 ", "折叠床", "x" * 300, 0, 1, -1, 1.5, 2.0, -0.5, 1e20, 10**16, True, False, [], {}, ["a"],
    {"sha256": "0" * 64}, "abc", "1", "2", "5", "9", "99", "０１", "1 实物储备", "2026-01-02", "2026-02-30", "2999-01-01",
    "2026/1/2", "2026年1月2日", "2026-01-02 08:00:00", "20260102", "13800138000", "0591-87654321", "138", "张", "吨",
    "台", "件", "350102", "350199", "1010100", "9999999", "91350100M000100Y43", "91350100M000100Y44", "38.001", "1,200",
    "12.345678", "-3", "1e3", "NaN", "CGCS2000", "WGS84", "wgs84", "119.3", "26.08", "200", "-95", "CK0013", "WZ-0001",
]


def _valid_values() -> dict[str, list[Any]]:
    """Per field name, the values the fixtures' valid samples use (all types, several numbers)."""
    out: dict[str, list[Any]] = {}
    for t in RECORD_TYPES:
        for n in (1, 2, 7):
            for k, v in sample(t, n).items():
                out.setdefault(k, []).append(v)
    return out


VALID = _valid_values()


def _records(rng: random.Random, count: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i in range(count):
        t = rng.choice(list(RECORD_TYPES))
        data = copy.deepcopy(sample(t, rng.randint(1, 50)))
        fields = [f.name for f in RECORD_TYPES[t].fields]
        for name in fields:  # optional fields filled with some valid value now and then
            if name not in data and name in VALID and rng.random() < 0.3:
                data[name] = copy.deepcopy(rng.choice(VALID[name]))
        mode = i % 4
        if mode == 0:  # left valid
            pass
        elif mode == 1:  # one or two fields get an arbitrary value
            for name in rng.sample(fields, rng.randint(1, 2)):
                data[name] = copy.deepcopy(rng.choice(POOL))
        elif mode == 2:  # a required field goes, or an unknown one comes
            if rng.random() < 0.5 and data:
                del data[rng.choice(list(data))]
            else:
                data[rng.choice(["extra", "备注", "quantity_x"])] = rng.choice(POOL)
        else:  # many fields at once, and the key order shuffled (another shape)
            for name in fields:
                if rng.random() < 0.4:
                    data[name] = copy.deepcopy(rng.choice(POOL))
            items = list(data.items())
            rng.shuffle(items)
            data = dict(items)
        out.append((t, data))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_equals_normalize_on_generated_records(seed: int) -> None:
    rng = random.Random(seed)
    fast_hits = 0
    for t, data in _records(rng, 1500):
        expected = normalize(t, data, context=CTX)
        assert normalize_checked(t, data, context=CTX) == expected, (t, data)
        clean = fast_normalize(t, data, TODAY, CTX)
        if clean is not None:  # "valid": normalize must agree, field for field and in the same order
            fast_hits += 1
            assert expected[1] == [], (t, data, expected[1])
            assert list(clean.items()) == list(expected[0].items()), (t, data)
    assert fast_hits > 300  # the valid quarter (and more) really takes the fast path


def test_every_sample_is_valid_through_the_fast_path() -> None:
    for t in RECORD_TYPES:
        data = sample(t, 3)
        assert fast_normalize(t, data, TODAY, CTX) == normalize(t, data, context=CTX)[0]


def test_errors_are_normalize_errors_for_bad_records() -> None:
    bad = dict(sample("stock", 1), quantity="很多", checked_date="2026-02-30", extra="?")
    del bad["unit"]
    clean, errors = normalize_checked("stock", bad, context=CTX)
    assert (clean, errors) == normalize("stock", bad, context=CTX)
    assert {e.rule for e in errors} >= {"type.decimal", "date.invalid", "unknown_field", "required"}


def test_record_rules_still_apply_on_the_fast_path() -> None:
    data = dict(sample("stock", 1), production_date="2026-03-01", expiry_date="2026-01-01")
    assert fast_normalize("stock", data, TODAY, CTX) is None
    assert [e.rule for e in normalize_checked("stock", data, context=CTX)[1]] == ["date.order"]


def test_not_future_uses_the_reference_date() -> None:
    data = dict(sample("stock", 1), checked_date="2026-07-01")
    assert fast_normalize("stock", data, TODAY, CTX) is None
    assert fast_normalize("stock", data, date(2026, 8, 1), CTX) == normalize("stock", data, today=date(2026, 8, 1))[0]


def test_many_shapes_stay_bounded() -> None:
    v = validator("material")
    base = sample("material", 1)
    for i in range(MAX_SHAPES + 10):
        items = list(base.items())
        random.Random(i).shuffle(items)
        assert fast_normalize("material", dict(items), TODAY, CTX) == normalize("material", base, context=CTX)[0]
    assert len(v.shapes) <= MAX_SHAPES


ENVELOPE_POOL: list[Any] = [None, "", "x", "stock", "upsert", "delete", 0, 1, -1, 2**63, 2**63 - 1, True, 1.0, [], {},
                            "2026-11-01T08:00:00+08:00", "2026-13-01", "x" * 50, {"source": "s"}]


def _envelopes(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        t = rng.choice(list(RECORD_TYPES))
        rec = record(t, sample(t, i + 1), seq=rng.randint(0, 10**6), op=rng.choice(["upsert", "upsert", "delete"]))
        if i % 3:
            for name in rng.sample(["type", "department", "key", "op", "seq", "version", "updated_at", "provenance",
                                    "data"], rng.randint(1, 3)):
                if rng.random() < 0.2:
                    rec.pop(name, None)
                else:
                    rec[name] = copy.deepcopy(rng.choice(ENVELOPE_POOL))
        out.append(rec)
    return out


def test_envelope_ok_only_when_record_problems_finds_none() -> None:
    rng = random.Random(7)
    oks = 0
    for rec in _envelopes(rng, 3000):
        problems = record_problems(rec)
        if envelope_ok(rec):
            oks += 1
            assert problems == [], rec
        elif rec.get("op") in ("upsert", "delete") and not problems:
            # The quick test may send a record on to the full one, never the other way round; only
            # non-JSON look-alikes (subclasses) may differ, and generated records have none.
            raise AssertionError(f"envelope_ok refused a clean envelope: {rec}")
    assert oks > 800


def _check_records_before(records: list[dict[str, Any]], context: ValidationContext) -> list[tuple]:
    """The hub's check_records as it was before the fast path (record_problems + normalize for every record)."""
    out = []
    for rec in records:
        reasons: list[dict[str, Any]] = []
        clean = None
        for fld, value, rule, message in record_problems(rec):
            reasons.append(reason(fld, ENVELOPE_LABELS.get(fld, fld), value, rule, message))
        if isinstance(rec.get("type"), str) and rec["type"] not in RECORD_TYPES:
            reasons.append(reason("type", ENVELOPE_LABELS["type"], rec["type"], "record_type",
                                  f"未知记录类型“{rec['type']}”，应为 {', '.join(RECORD_TYPES)} 之一"))
        ok = not reasons
        if ok and rec["op"] == "upsert":
            try:
                c, errors = normalize(rec["type"], rec["data"], context=context)
            except Exception as e:  # noqa: BLE001 - as the hub did
                reasons.append(reason("data", ENVELOPE_LABELS["data"], None, "invalid", f"记录无法校验：{e}"))
                out.append((reasons, None, ok))
                continue
            reasons.extend(e.as_dict() for e in errors)
            if not errors:
                key = record_key(rec["type"], c)
                if key != rec["key"]:
                    reasons.append(reason("key", ENVELOPE_LABELS["key"], rec["key"], "key_mismatch",
                                          f"记录键与数据不符：按数据应为“{key}”"))
                clean = c
        out.append((reasons, clean, ok))
    return out


def test_check_records_gives_what_it_gave_before_the_fast_path() -> None:
    rng = random.Random(11)
    recs = _envelopes(rng, 600)
    for (t, data), rec in zip(_records(rng, 600), recs, strict=True):  # bad data inside good envelopes too
        if rec.get("op") == "upsert" and isinstance(rec.get("type"), str):
            rec["type"], rec["data"] = t, data
            rec["key"] = rng.choice([rec.get("key"), record_key(t, data), record_key(t, data)])
    recs.append(record("unknown_type", {"a": 1}, key="k"))
    got = [(c.reasons, c.clean, c.envelope_ok) for c in check_records(recs, CTX)]
    assert got == _check_records_before(recs, CTX)
    assert sum(1 for _, clean, _ in got if clean is not None) > 40  # valid records among them, not only rejections
