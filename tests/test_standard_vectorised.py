"""The vectorised validator (gateway.standard.vectorised) agrees with normalize() on a generated corpus.

Every record type, values in every spelling the adapters hand over (text, numbers, Decimal,
date/datetime, list and dict values), every rule broken at least once. For every record:
the batch's mask True means normalize finds no error and gives the same canonical record,
type for type; validate_rows_via_batch gives exactly normalize's answer. Seeds are fixed.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from gateway.standard import uscc
from gateway.standard.category import CategoryTable
from gateway.standard.columns import PY_WHITESPACE
from gateway.standard.schema import (
    CATEGORY_CODE,
    DATE,
    DECIMAL,
    DIVISION_CODE,
    ENUM,
    FILE_REF,
    INT,
    ITEMS,
    PHONE,
    RECORD_TYPES,
    STRING,
    UNITS,
    USCC,
    Field,
)
from gateway.standard.validate import ValidationContext, normalize
from gateway.standard.vectorised import records_to_batch, validate_batch, validate_rows_via_batch

TODAY = date(2026, 6, 1)
CTX = ValidationContext(today=TODAY)
# A code table that knows level 2 under 1 only: 1020000 is unknown, 1019900 (catch-all) and 2xxxxxx are fine.
TABLE = CategoryTable.from_rows(
    [("1000000", "基本生活"), ("2000000", "装备"), ("3000000", "工程"), ("1010000", "住宿")], "t1"
)
CTX_TABLE = ValidationContext(today=TODAY, category_table=TABLE, extra_units=("盏",))

EVERY_RULE = {
    "required",
    "unknown_field",
    "type.string",
    "max_len",
    "unit",
    "min",
    "max",
    "type.int",
    "type.decimal",
    "date.format",
    "date.invalid",
    "not_future",
    "date.order",
    "enum",
    "category.structure",
    "category.unknown",
    "division.format",
    "division.province",
    "uscc.length",
    "uscc.charset",
    "uscc.division",
    "uscc.check",
    "phone.format",
    "coords_need_system",
    "type.items",
    "items.format",
    "items.required",
    "items.min",
    "items.unit",
    "items.max_len",
    "items.type.decimal",
    "items.unknown_field",
    "file_ref.format",
    "file_ref.type",
}

TEXT = "折叠床帐篷应急救灾物资储备库ABCxyz0123-_ "


def _uscc(rng: random.Random) -> str:
    body = (
        rng.choice("912")
        + rng.choice("1239")
        + f"{rng.randint(110000, 659999)}"
        + "".join(rng.choice(uscc.ALPHABET) for _ in range(9))
    )
    return body + uscc.check_char(body)


def _date_text(rng: random.Random, d: date, form: int = -1) -> Any:
    form = form % 9 if form >= 0 else rng.randrange(9)
    if form == 0:
        return f"{d.year}/{d.month}/{d.day}"
    if form == 1:
        return f"{d.year}年{d.month}月{d.day}日"
    if form == 2:
        return f"{d.year}.{d.month:02d}.{d.day} 08:30:00"
    if form == 3:
        return d
    if form == 4:
        return datetime(d.year, d.month, d.day, rng.randrange(24), 5)
    return d.isoformat()


def _number(rng: random.Random, f: Field, form: int) -> Any:
    lo = f.minimum if f.minimum is not None else 0
    hi = f.maximum if f.maximum is not None else 10**6
    scale = f.scale if f.kind == DECIMAL else 0
    value = round(rng.uniform(lo, hi), rng.randint(0, scale or 0))
    if f.exclusive_minimum and value <= lo:
        value = lo + 1
    form %= 6
    if f.kind == INT or form == 0:
        value = int(value) + (1 if f.exclusive_minimum and int(value) <= lo else 0)
        return [value, str(value), float(value), Decimal(value)][form % 4]
    if form == 1:
        return str(value)
    if form == 2:
        return Decimal(str(value))
    if form == 3 and value < 10**5:
        return f"{value:,}"  # "1,234.5": only the row validator reads this
    if form == 4:  # a float with more places than the scale: round() to the scale, ties included
        ties = [lo + 0.0005, lo + 2.0015, lo + 1.2345, lo + 0.125]  # near a tie: left to normalize, by design
        return rng.choice(ties) if rng.random() < 0.2 else rng.uniform(lo, hi)
    if form == 5:  # text with more places than the scale, ties included: rounded half-up by the Decimal route
        return rng.choice([f"{rng.uniform(lo, hi):.{rng.randint(0, 8)}f}", f"{lo + 2.0015}", f"+{value}", "1,2,3.4"])
    return value


def _valid_value(rng: random.Random, f: Field, form: int) -> Any:
    """A valid value of `f`; `form` picks its spelling (one per column and chunk, as a source column has one type)."""
    k = f.kind
    if k == STRING:
        if f.units:
            return rng.choice(UNITS)
        if form % 10 == 0:
            return rng.randint(1, 10**6)  # a numeric id column
        s = "".join(rng.choice(TEXT) for _ in range(rng.randint(1, min(f.max_len or 20, 20)))).strip() or "x"
        return rng.choice([s, s, s, f" {s}\u3000", f"\t{s}\n"])
    if k in (INT, DECIMAL):
        return _number(rng, f, form)
    if k == DATE:
        return _date_text(rng, TODAY - timedelta(days=rng.randint(0, 3000)), form)
    if k == ENUM:
        assert f.codes is not None
        code, label = rng.choice(list(f.codes.items()))
        return [code, code, label, f"{code} {label}", int(code) if code.isdigit() else code.lower()][form % 5]
    if k == CATEGORY_CODE:
        code = rng.choice(["1010100", "1019900", "2000000", "3150000", "1010101"])
        return int(code) if form % 10 == 0 else code
    if k == DIVISION_CODE:
        return rng.choice(["350102", "110101", "350102001002", "650100"])
    if k == USCC:
        code = _uscc(rng)
        return code.lower() if form % 10 == 0 else code
    if k == PHONE:
        return (
            rng.choice(
                [
                    "13800138000",
                    "0591-87654321",
                    "(0591)87654321",
                    "+86 13912345678",
                    "0591-8765432转12",
                    "010-12345678ext9",
                    " 13800138000 ",
                ]
            )
            if form % 6
            else 13800138000
        )
    if k == ITEMS:
        n = rng.randint(1, 3)
        if form % 2:
            return [
                {"material_id": f"WZ-{i}", "quantity": [i + 1, 2.5][form % 4 // 2], "unit": rng.choice(UNITS)}
                for i in range(n)
            ]
        return rng.choice([";", "；", "\n"]).join(f"WZ-{i} : {i + 1}.5:{rng.choice(UNITS)}" for i in range(n)) + ";"
    if k == FILE_REF:
        return {
            "sha256": f"{rng.getrandbits(256):064x}",
            "size": rng.randint(0, 10**6),
            "name": rng.choice(["协议.pdf", "a.DOCX", "b.ofd"]),
        }
    raise AssertionError(k)


def valid_record(rng: random.Random, t: str, forms: dict[str, int]) -> dict[str, Any]:
    rt = RECORD_TYPES[t]
    data = {f.name: _valid_value(rng, f, forms[f.name]) for f in rt.fields if f.is_required or rng.random() < 0.5}
    if t == "depot":  # coordinates come in pairs, with their system
        if rng.random() < 0.5:
            data.update(
                longitude=round(rng.uniform(73, 136), 6),
                latitude=round(rng.uniform(3, 54), 6),
                coord_system=rng.choice(["CGCS2000", "wgs84", "GCJ02"]),
            )
        else:
            for k in ("longitude", "latitude", "coord_system"):
                data.pop(k, None)
    if t == "stock" and "production_date" in data and "expiry_date" in data:
        data["expiry_date"] = (TODAY + timedelta(days=rng.randint(1, 900))).isoformat()
    if t == "agreement":
        signed = TODAY - timedelta(days=rng.randint(0, 900))
        data.update(
            signed_date=_date_text(rng, signed, forms["signed_date"]),
            start_date=(signed + timedelta(days=rng.randint(0, 9))).isoformat(),
            end_date=(signed + timedelta(days=rng.randint(10, 900))).isoformat(),
        )
    return data


def _string_field(t: str, pred: Callable[[Field], bool]) -> str | None:
    names = [f.name for f in RECORD_TYPES[t].fields if pred(f)]
    return names[0] if names else None


def _set(t: str, data: dict[str, Any], pred: Callable[[Field], bool], value: Any) -> None:
    name = _string_field(t, pred)
    if name is not None:
        data[name] = value


BREAK: dict[str, Callable[[random.Random, str, dict[str, Any]], None]] = {
    "required": lambda r, t, d: d.__setitem__(RECORD_TYPES[t].required_fields[0], r.choice(["", "  ", "\u3000", None])),
    "unknown_field": lambda r, t, d: d.__setitem__(r.choice(["extra", "备注"]), r.choice([None, "x"])),
    "type.string": lambda r, t, d: _set(t, d, lambda f: f.kind == STRING, r.choice([True, [1], float("nan")])),
    "max_len": lambda r, t, d: _set(t, d, lambda f: f.kind == STRING and not f.units, "长" * 300),
    "unit": lambda r, t, d: _set(t, d, lambda f: f.units, r.choice(["坨", "盏"])),
    "min": lambda r, t, d: _set(t, d, lambda f: f.kind in (INT, DECIMAL), r.choice([-1, "0", 0, -0.5])),
    "max": lambda r, t, d: (
        d.update(longitude=r.choice([200, "137.5"]), latitude=30, coord_system="WGS84") if t == "depot" else None
    ),
    "type.int": lambda r, t, d: _set(t, d, lambda f: f.kind == INT, r.choice(["abc", 1.5, "1.5", "1e3", "+7", 10**16, 1.2e21, -(10**15)])),
    "type.decimal": lambda r, t, d: _set(
        t, d, lambda f: f.kind == DECIMAL, r.choice(["很多", "NaN", float("inf"), "1" * 16, 1e16, 10**16, 2**70])
    ),
    "date.format": lambda r, t, d: _set(
        t, d, lambda f: f.kind == DATE, r.choice(["20260102", "明天", "2026-1-2x", "2026- 1-02", 20260102])
    ),
    "date.invalid": lambda r, t, d: _set(
        t,
        d,
        lambda f: f.kind == DATE,
        r.choice(["2023-02-29", "2023/2/30", "2026-13-01", "0000-01-01", "2024年4月31日"]),
    ),
    "not_future": lambda r, t, d: _set(
        t, d, lambda f: f.not_future, r.choice(["2999-01-01", "2026-06-02", date(2027, 1, 1)])
    ),
    "date.order": lambda r, t, d: d.update(
        {
            "stock": {"production_date": "2026-03-01", "expiry_date": "2026-01-01"},
            "agreement": {"signed_date": "2026-03-01", "start_date": "2026-01-01"},
        }.get(t, {})
    ),
    "enum": lambda r, t, d: _set(t, d, lambda f: f.kind == ENUM, r.choice(["9", 9, "（1）", "1  实物储备", True])),
    "category.structure": lambda r, t, d: _set(
        t, d, lambda f: f.kind == CATEGORY_CODE, r.choice(["1001000", "9999999", "101", 4010000])
    ),
    "category.unknown": lambda r, t, d: _set(t, d, lambda f: f.kind == CATEGORY_CODE, "1020000"),
    "division.format": lambda r, t, d: _set(
        t, d, lambda f: f.kind == DIVISION_CODE, r.choice(["35010", "35010a", 3501.5])
    ),
    "division.province": lambda r, t, d: _set(t, d, lambda f: f.kind == DIVISION_CODE, r.choice(["990102", 990102])),
    "uscc.length": lambda r, t, d: _set(t, d, lambda f: f.kind == USCC, "91350102MA000000"),
    "uscc.charset": lambda r, t, d: _set(t, d, lambda f: f.kind == USCC, "91350102MA000000I1"),
    "uscc.division": lambda r, t, d: _set(t, d, lambda f: f.kind == USCC, "9135A102MA0000001L"),
    "uscc.check": lambda r, t, d: _set(t, d, lambda f: f.kind == USCC, "91350102MA0000001M"),
    "phone.format": lambda r, t, d: _set(
        t, d, lambda f: f.kind == PHONE, r.choice(["138", "12800138000", "0591-876", 123])
    ),
    "coords_need_system": lambda r, t, d: (
        d.update(r.choice([{"longitude": 119.3}, {"longitude": 119.3, "latitude": 26.1}])) if t == "depot" else None
    ),
    "type.items": lambda r, t, d: d.update(items=r.choice([5, [1], [None]])) if t == "agreement" else None,
    "items.format": lambda r, t, d: d.update(items="M1:1:箱:4") if t == "agreement" else None,
    "items.required": lambda r, t, d: (
        d.update(items=r.choice(["M1::箱", ";", [{"material_id": "M1", "quantity": 1}]])) if t == "agreement" else None
    ),
    "items.min": lambda r, t, d: (
        d.update(items=r.choice(["M1:0:箱", [{"material_id": "M1", "quantity": 0, "unit": "箱"}]]))
        if t == "agreement"
        else None
    ),
    "items.unit": lambda r, t, d: d.update(items="M1:1:坨") if t == "agreement" else None,
    "items.max_len": lambda r, t, d: d.update(items="M" * 33 + ":1:箱") if t == "agreement" else None,
    "items.type.decimal": lambda r, t, d: d.update(items="M1:很多:箱") if t == "agreement" else None,
    "items.unknown_field": lambda r, t, d: (
        d.update(items=[{"material_id": "M1", "quantity": 1, "unit": "箱", "x": 1}]) if t == "agreement" else None
    ),
    "file_ref.format": lambda r, t, d: _set(
        t,
        d,
        lambda f: f.kind == FILE_REF,
        r.choice(
            [
                "a.pdf",
                {"sha256": "0" * 63, "size": 1, "name": "a.pdf"},
                {"sha256": "0" * 64, "size": -1, "name": "a.pdf"},
            ]
        ),
    ),
    "file_ref.type": lambda r, t, d: _set(
        t,
        d,
        lambda f: f.kind == FILE_REF,
        {"sha256": "a" * 64, "size": 1, "name": r.choice(["a.exe", "pdf", "a.pdf "])},
    ),
}

# Arbitrary values for the chaos quarter: right for some fields, wrong for others.
POOL: list[Any] = [
    None,
    "",
    "  ",
    0,
    1,
    -1,
    1.5,
    2.0,
    1e20,
    10**16,
    2**70,
    True,
    [],
    {},
    "abc",
    "1",
    "5",
    "99",
    "０１",
    "1 实物储备",
    "2026-01-02",
    "2026-02-30",
    "2026/1/2",
    "13800138000",
    "张",
    "350102",
    "1010100",
    "91350100M000100Y43",
    "1,200",
    "12.345678",
    "-3",
    "NaN",
    "WGS84",
    "119.3",
    Decimal("12.3456"),
    Decimal("-0"),
    date(2020, 1, 1),
    "M1:1:箱",
    [{"material_id": "M1", "quantity": "2", "unit": "箱"}],
    {"sha256": "b" * 64, "size": 3, "name": "x.wps"},
    "\u2003x\u2003",
]


CHUNK = 250  # records per batch; a column keeps one spelling within a batch


def corpus(seed: int, per_type: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = {}
    for t in RECORD_TYPES:
        fields = [f.name for f in RECORD_TYPES[t].fields]
        records = []
        for i in range(per_type):
            if i % CHUNK == 0:
                forms = {name: rng.randrange(60) for name in fields}
            data = valid_record(rng, t, forms)
            mode = i % 5
            if mode in (1, 2):  # one or two rules broken
                for rule in rng.sample(sorted(BREAK), mode):
                    BREAK[rule](rng, t, data)
            elif mode == 3:  # chaos: arbitrary values anywhere
                for name in rng.sample(fields, rng.randint(1, 3)):
                    data[name] = copy.deepcopy(rng.choice(POOL))
            records.append(data)
        out[t] = records
    return out


def _check(t: str, records: list[dict[str, Any]], ctx: ValidationContext, seen: set[str]) -> tuple[int, int]:
    expected = [normalize(t, r, context=ctx) for r in records]
    for _, errors in expected:
        seen.update(e.rule for e in errors)
    got = validate_rows_via_batch(t, records, context=ctx)
    assert got == expected
    assert repr(got) == repr(expected)  # same types too: 35 is not 35.0, "1" is not 1
    batch, unsure = records_to_batch(t, records)
    verdict = validate_batch(t, batch, context=ctx)
    rows = batch.to_pylist()
    mask = verdict.valid_mask.to_pylist()
    assert len(mask) == len(records) and None not in mask
    clean_rows = iter(verdict.records())
    for row, valid in zip(rows, mask, strict=True):
        if valid:  # "valid": normalize of the batch row agrees, error-free and value for value
            clean, errors = normalize(t, row, context=ctx)
            assert errors == [], (t, row, errors)
            assert repr(next(clean_rows)) == repr(clean), (t, row)
    if len(records) > 40:  # a slice of a batch (offsets into shared buffers) gives the same answers
        part = validate_batch(t, batch.slice(7, len(records) - 20), context=ctx)
        assert part.valid_mask.to_pylist() == mask[7 : len(records) - 13]
        whole = zip(verdict.valid_indices.to_pylist(), verdict.records(), strict=True)
        assert repr(part.records()) == repr([r for i, r in whole if 7 <= i < len(records) - 13])
    valid_rows = sum(1 for _, e in expected if not e)
    fast = sum(1 for m, u in zip(mask, unsure, strict=True) if m and not u)
    return valid_rows, fast


def _run(seed: int, per_type: int) -> None:
    seen: set[str] = set()
    for ctx in (CTX, CTX_TABLE):
        for t, records in corpus(seed, per_type).items():
            valid_rows = fast = 0
            for start in range(0, len(records), CHUNK):
                v, f = _check(t, records[start : start + CHUNK], ctx, seen)
                valid_rows, fast = valid_rows + v, fast + f
            # Most valid records take the vectorised path (not "not sure" for everything).
            assert fast >= 0.6 * valid_rows, (t, fast, valid_rows)
    assert EVERY_RULE <= seen, EVERY_RULE - seen


@pytest.mark.parametrize("seed", [1, 2])
def test_vectorised_agrees_with_normalize(seed: int) -> None:
    _run(seed, 1500)


@pytest.mark.slow
def test_vectorised_agrees_with_normalize_on_100k_records() -> None:
    _run(3, 20_000)


def _typed_table(rng: random.Random, n: int) -> pa.Table:
    """Stock rows as a database hands them over: NUMERIC as decimal128, DATE as date32, timestamps, ints."""
    rows = []
    for i in range(n):
        d = TODAY - timedelta(days=rng.randint(-5, 40000))
        rows.append(
            {
                "material_id": rng.choice([f"WZ-{i}", f" WZ-{i} ", "", None, "长" * 33]),
                "depot_id": rng.choice([f"KU-{i % 7}", None]),
                "quantity": rng.choice(
                    [
                        Decimal(rng.randint(0, 10**7)) / 1000,
                        Decimal("-1.000"),
                        Decimal("12.3456"),
                        None,
                        Decimal("999999999999999.9999"),
                        Decimal("0.0005"),
                    ]
                ),
                "unit": rng.choice(["箱", "张", "坨", None]),
                "alert_threshold": rng.choice([rng.uniform(0, 1000), round(rng.uniform(0, 1000), 3), -0.0, None, 1e15]),
                "production_date": rng.choice([d, None]),
                "inbound_date": rng.choice([datetime(d.year, d.month, d.day, 23, 59), None]),
                "expiry_date": rng.choice([d + timedelta(days=rng.randint(-3, 900)), None]),
                "condition": rng.choice([1, 2, 3, 4, None]),
                "reserve_level": rng.choice([1, 5, 7, None]),
                "responsible_phone": rng.choice([13800138000, 12345, None]),
                "checked_date": rng.choice([d, TODAY, TODAY + timedelta(days=1)]),
            }
        )
    schema = pa.schema(
        [
            ("material_id", pa.large_string()),
            ("depot_id", pa.string()),
            ("quantity", pa.decimal128(20, 4)),
            ("unit", pa.dictionary(pa.int32(), pa.string())),
            ("alert_threshold", pa.float64()),
            ("production_date", pa.date32()),
            ("inbound_date", pa.timestamp("ms")),
            ("expiry_date", pa.date64()),
            ("condition", pa.int8()),
            ("reserve_level", pa.uint64()),
            ("responsible_phone", pa.int64()),
            ("checked_date", pa.date32()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def test_typed_source_columns_agree_with_normalize() -> None:
    table = _typed_table(random.Random(5), 4000)
    verdict = validate_batch("stock", table, context=CTX)
    rows = table.to_pylist()
    clean_rows = iter(verdict.records())
    valid = fast = 0
    for row, ok in zip(rows, verdict.valid_mask.to_pylist(), strict=True):
        clean, errors = normalize("stock", row, context=CTX)
        valid += not errors
        if ok:
            fast += 1
            assert errors == [], (row, errors)
            assert repr(next(clean_rows)) == repr(clean), row
    # Every column type here is vectorised: each valid row is found valid (none left "not sure").
    edge = sum(1 for r in rows if r["quantity"] == Decimal("999999999999999.9999"))  # left to normalize, by a margin
    assert valid - edge <= fast <= valid and fast > 50, (fast, valid)
    assert verdict.fallbacks == {}


def test_a_column_outside_the_standard_sends_every_row_to_normalize() -> None:
    batch = pa.table(
        {"material_id": ["M1"], "quantity": [1], "unit": ["箱"], "checked_date": ["2026-01-02"], "备注": [None]}
    )
    verdict = validate_batch("stock", batch, context=CTX)
    assert verdict.valid_mask.to_pylist() == [False]
    assert [e.rule for e in normalize("stock", batch.to_pylist()[0], context=CTX)[1]] == ["unknown_field"]
    assert "备注" in verdict.fallbacks


def test_not_future_uses_the_reference_date() -> None:
    batch = pa.table({"material_id": ["M1"], "quantity": ["1"], "unit": ["箱"], "checked_date": ["2026-07-01"]})
    assert validate_batch("stock", batch, today=TODAY).valid_mask.to_pylist() == [False]
    later = validate_batch("stock", batch, today=date(2026, 8, 1))
    assert later.valid_mask.to_pylist() == [True]
    assert later.records() == [normalize("stock", batch.to_pylist()[0], today=date(2026, 8, 1))[0]]


def test_whitespace_list_is_what_python_strips() -> None:
    assert PY_WHITESPACE == "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


def test_empty_and_single_row_batches() -> None:
    empty = pa.record_batch({"material_id": pa.array([], pa.string()), "items": pa.array([], pa.string())})
    verdict = validate_batch("agreement", empty, context=CTX)
    assert len(verdict.valid_mask) == 0 and verdict.records() == []
    assert validate_rows_via_batch("stock", [], context=CTX) == []
    one = [{"material_id": "M1", "quantity": "12.5", "unit": "箱", "checked_date": "2026/5/1"}]
    assert validate_rows_via_batch("stock", one, context=CTX) == [normalize("stock", one[0], context=CTX)]
    assert validate_batch("stock", records_to_batch("stock", one)[0], context=CTX).valid_mask.to_pylist() == [True]


SPECIAL = list(PY_WHITESPACE) + list("０１.,-+:：;；e年月日/()（）#转xX\u200b") + ["ext", "+86", "99", "00"]


def _mutate(rng: random.Random, value: Any) -> Any:
    """A valid value's text edited by a character or two: where spellings the row validator reads differently hide."""
    text = value.isoformat() if isinstance(value, date) else str(value)
    for _ in range(rng.randint(1, 2)):
        i = rng.randint(0, len(text))
        op = rng.randrange(4)
        if op == 0:
            text = text[:i] + rng.choice(SPECIAL) + text[i:]
        elif op == 1:
            text = text[:i] + text[i + 1 :]
        elif op == 2:
            text = text[:i] + text[i:].upper()
        else:
            text = text[:i] + text[i : i + 1] * 2 + text[i + 1 :]
    return text


@pytest.mark.parametrize("seed", [11])
def test_edited_spellings_never_pass_as_valid_wrongly(seed: int) -> None:
    rng = random.Random(seed)
    seen: set[str] = set()
    for t, rt in RECORD_TYPES.items():
        for f in rt.fields:
            if f.kind in (ITEMS, FILE_REF) and rng.random() < 0.5:
                continue
            records = []
            for _ in range(300):
                data = valid_record(rng, t, {name: 1 for name in rt.field_names})
                data[f.name] = _mutate(rng, _valid_value(rng, f, rng.randrange(60)))
                records.append(data)
            _check(t, records, CTX_TABLE, seen)


def test_benchmark_prints_both_paths() -> None:
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench" / "bench_validate_vectorised.py"
    out = subprocess.run([sys.executable, str(bench), "2000"], capture_output=True, text=True, timeout=120, check=True)
    assert "2000 stock records, 2000 valid" in out.stdout
    assert "normalize (row)" in out.stdout and "validate_batch (Arrow)" in out.stdout
