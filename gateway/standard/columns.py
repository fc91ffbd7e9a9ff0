"""Column checks for `gateway.standard.vectorised`: one per field kind, each mirroring its converter.

    ok, canonical, why = check(field, column, ref, ctx)

`ok` is True where the value is certainly what the row converter accepts (or
absent and allowed), `canonical` is the converter's value there (null where
absent), `why` names an input type this module leaves wholly to the row
validator. A spelling the row converter would still accept but that is not
mirrored here (e.g. "1e3", full-width digits, enum labels with odd spacing)
is simply not ok: "not sure", never "valid". Dates: column_dates.py. Each rule below quotes
the converter it mirrors in gateway/standard/converters.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from gateway.standard import division, uscc
from gateway.standard.column_dates import date_column
from gateway.standard.converters import MAX_DIGITS, enum_lookup
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
    STRING,
    USCC,
    Field,
)

if TYPE_CHECKING:
    from gateway.standard.validate import ValidationContext

# What str.strip() removes (every c with c.isspace(); the test checks this list against Python).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS = "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE)  # the same set inside an RE2 character class
EXACT_FLOAT = 2.0**53  # integral floats below this convert to int64 and text exactly


Checked = tuple[pa.Array, pa.Array, str]


def _false(n: int) -> pa.Array:
    return pa.array([False] * n, pa.bool_())


def _plain(col: pa.Array) -> pa.Array:
    """Dictionary, large and view strings as the plain types the checks know."""
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.dictionary_decode(), t.value_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        col = col.cast(pa.string())
    elif pa.types.is_date64(t):
        col = col.cast(pa.date32())
    return col


def _integral(x: pa.Array, limit: float) -> pa.Array:
    return pc.and_(pc.equal(pc.floor(x), x), pc.less(pc.abs(x), limit))


def _float_to_int(x: pa.Array, ok: pa.Array) -> pa.Array:
    return pc.if_else(ok, x, 0.0).cast(pa.int64())


_BIG = 10**MAX_DIGITS


def _integer_col(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """An integer column as int64, ok where it has at most MAX_DIGITS digits (converters: 数值过大 beyond)."""
    if col.type == pa.uint64():
        ok = pc.less(col, pa.scalar(_BIG, pa.uint64()))
        return ok, pc.if_else(ok, col, pa.scalar(0, pa.uint64())).cast(pa.int64())
    n = col.cast(pa.int64())
    big = pa.scalar(_BIG, pa.int64())
    ok = pc.and_(pc.less(n, big), pc.greater(n, pc.negate(big)))
    return pc.fill_null(ok, True), n


def _text(col: pa.Array, f: Field) -> tuple[pa.Array, pa.Array, str]:
    """converters._as_text: str as is, int as its digits, an integral float as its int's digits."""
    t = col.type
    if pa.types.is_string(t):
        return pa.array([True] * len(col), pa.bool_()), col, ""
    if pa.types.is_integer(t):
        ok, ints = _integer_col(col)
        return ok, ints.cast(pa.string()), ""
    if pa.types.is_floating(t):
        col = col.cast(pa.float64())
        ok = _integral(col, EXACT_FLOAT)
        return ok, _float_to_int(col, ok).cast(pa.string()), ""
    return _false(len(col)), pa.nulls(len(col), pa.string()), f"{t} input"


def _bounds(f: Field, x: pa.Array) -> pa.Array:
    ok = pa.array([True] * len(x), pa.bool_())
    if f.minimum is not None:
        ok = pc.and_(ok, (pc.greater if f.exclusive_minimum else pc.greater_equal)(x, f.minimum))
    if f.maximum is not None:
        ok = pc.and_(ok, pc.less_equal(x, f.maximum))
    return ok


def _match(col: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(col, pattern)


# --- kinds --------------------------------------------------------------------------------------------------------


def _string(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    ok, text, why = _text(col, f)  # converters.string: a non-integral float is str(v): not mirrored
    if f.max_len is not None:
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(text), f.max_len))
    if f.units:
        ok = pc.and_(ok, pc.is_in(text, value_set=pa.array(sorted(ctx.units), pa.string())))
    return ok, text, why


_INT_TEXT = rf"^[0-9]{{1,{MAX_DIGITS}}}$"


def _all(ok: pa.Array) -> bool:
    """Every value (nulls aside) already judged: the wider route has nothing left to read."""
    return pc.all(pc.fill_null(ok, True)).as_py() is not False


def _decimal_text(col: pa.Array) -> pa.Array:
    """converters._parse_decimal's reading of text: commas dropped; a leading '+' is the number itself."""
    return pc.replace_substring_regex(pc.replace_substring(col, ",", ""), r"^\+", "")


def _int(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    t = col.type
    if pa.types.is_integer(t):  # converters.integer: int as is
        ok, n = _integer_col(col)
    elif pa.types.is_floating(t):  # an integral float is int(v)
        col = col.cast(pa.float64())
        ok = _integral(col, 10.0**MAX_DIGITS)
        n = _float_to_int(col, ok)
    elif pa.types.is_string(t):  # "12": Decimal route; only plain digits mirrored
        ok = _match(col, _INT_TEXT)
        n = pc.if_else(ok, col, "0").cast(pa.int64())
        if not _all(ok):  # the Decimal route: "1,200", "+7", "12.00"
            text = _decimal_text(col)
            wide = pc.and_(pc.invert(pc.fill_null(ok, False)), _match(text, rf"^[0-9]{{1,{MAX_DIGITS}}}(?:\.0+)?$"))
            wide_n = pc.if_else(wide, pc.replace_substring_regex(text, r"\.0+$", ""), "0").cast(pa.int64())
            ok, n = pc.or_(pc.fill_null(ok, False), wide), pc.if_else(wide, wide_n, n)
    elif pa.types.is_decimal(t) and t.scale == 0:  # an integral Decimal below 10**15
        ok = pc.less(pc.abs(col.cast(pa.float64())), 10.0**MAX_DIGITS)
        n = pc.if_else(ok, col, pa.scalar(Decimal(0), t)).cast(pa.int64())
    else:
        return _false(len(col)), pa.nulls(len(col), pa.int64()), f"{t} input"
    return pc.and_(ok, _bounds(f, n)), n, ""


def _decimal(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    t, scale = col.type, f.scale
    places = scale if scale is not None else MAX_DIGITS
    if pa.types.is_integer(t):  # converters.decimal: an int is returned as is
        ok, n = _integer_col(col)
        return pc.and_(ok, _bounds(f, n)), n, ""
    if pa.types.is_floating(t):
        x = col.cast(pa.float64())
        if scale is None:
            ok = pc.less(pc.abs(x), 10.0**MAX_DIGITS)
        else:
            # Python's round(v, scale) is the double nearest to v's exact value rounded to `scale` places.
            # Arrow's round r is accepted only where that is provably r: r is the double of k/10^s for an
            # integer k, and v lies nearer to k/10^s than half a unit of the last place minus every
            # rounding error of the check (so v is no tie and k/10^s is the decimal round() picks).
            unit = 10.0**-scale
            r = pc.round(x, scale, round_mode="half_to_even")
            k = pc.multiply(r, 10.0**scale)
            slack = pc.add(pc.multiply(pc.abs(x), 2.0**-48), 1e-300)
            near = pc.less(pc.add(pc.abs(pc.subtract(x, r)), slack), unit / 2)
            ok = pc.and_(
                pc.and_(pc.equal(pc.floor(k), k), pc.equal(pc.divide(k, 10.0**scale), r)),
                pc.and_(near, pc.less(pc.abs(x), 2.0**51 * unit)),
            )
            x = r
        ok = pc.fill_null(pc.and_(ok, pc.is_finite(x)), False)
        return pc.and_(ok, _bounds(f, x)), x, ""
    if pa.types.is_string(t):  # the converter's own fast path: plain digits with at most `scale` places
        frac = rf"(?:\.[0-9]{{1,{places}}})?" if places else ""
        ok = pc.and_(_match(col, r"^[0-9]+" + frac + "$"), pc.less_equal(pc.utf8_length(col), MAX_DIGITS))
        x = pc.if_else(ok, col, "0").cast(pa.float64())
        if scale is not None and not _all(ok):
            # The Decimal route: Decimal(v.replace(",", "")) rounded half-up to the scale, then float().
            text = _decimal_text(col)
            wide = pc.and_(
                pc.invert(pc.fill_null(ok, False)), _match(text, rf"^[0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]{{1,18}})?$")
            )
            d = pc.if_else(wide, text, "0").cast(pa.decimal128(38, 18))
            d = pc.round(d, scale, round_mode="half_towards_infinity")
            ok, x = pc.or_(pc.fill_null(ok, False), wide), pc.if_else(wide, d.cast(pa.string()).cast(pa.float64()), x)
        return pc.and_(ok, _bounds(f, x)), x, ""
    if pa.types.is_decimal(t):  # float(v.quantize(quantum, ROUND_HALF_UP)) below 10**15
        d = col
        if scale is not None and t.scale > scale:
            d = pc.round(col, scale, round_mode="half_towards_infinity")
        x = d.cast(pa.string()).cast(pa.float64())  # via text: correctly rounded, as float(Decimal)
        ok = pc.less(pc.abs(col.cast(pa.float64())), 10.0**MAX_DIGITS * (1 - 2**-40))
        return pc.and_(ok, _bounds(f, x)), x, ""
    return _false(len(col)), pa.nulls(len(col), pa.float64()), f"{t} input"


def _enum(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    assert f.codes is not None
    lookup = enum_lookup(f.codes)
    t = col.type
    if pa.types.is_floating(t):  # an integral float is looked up as int
        x = col.cast(pa.float64())
        good = _integral(x, EXACT_FLOAT)
        col, t = pc.if_else(good, _float_to_int(x, good), None), pa.int64()
    if pa.types.is_string(t):
        keys = [k for k in lookup if isinstance(k, str)]
    elif pa.types.is_integer(t):
        col = _integer_col(col)[1]
        keys = [k for k in lookup if isinstance(k, int)]
    else:
        return _false(len(col)), pa.nulls(len(col), pa.string()), f"{t} input"
    key_array = pa.array(keys, col.type)
    idx = pc.index_in(col, value_set=key_array)  # not found: the row converter's looser spellings judge it
    code = pc.take(pa.array([lookup[k] for k in keys], pa.string()), idx)
    return pc.is_valid(idx), code, ""


_NZ = "(?:0[1-9]|[1-9][0-9])"
_CATEGORY = rf"^[123](?:000000|{_NZ}0000|{_NZ}{_NZ}00|{_NZ}{_NZ}{_NZ})$"  # category.structure_problem


def _category(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    ok, text, why = _text(col, f)
    ok = pc.and_(ok, _match(text, _CATEGORY))
    table = ctx.category_table
    if table is not None:  # membership, judged once per distinct structurally valid code
        candidates = pc.unique(pc.filter(text, pc.fill_null(ok, False))).to_pylist()
        members = pa.array([c for c in candidates if table.membership_problem(c) is None], pa.string())
        ok = pc.and_(ok, pc.is_in(text, value_set=members))
    return ok, text, why


_DIVISION = "^(?:" + "|".join(sorted(division.PROVINCES)) + ")(?:[0-9]{4}|[0-9]{10})$"


def _division(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    ok, text, why = _text(col, f)
    return pc.and_(ok, _match(text, _DIVISION)), text, why


_USCC_CHAR = f"[{uscc.ALPHABET}{uscc.ALPHABET[10:].lower()}]"  # ASCII only: str.upper() of other text varies
_USCC = rf"^{_USCC_CHAR}{{2}}[0-9]{{6}}{_USCC_CHAR}{{10}}$"
_USCC_VALUES = pa.array(list(uscc.ALPHABET), pa.string())


def _uscc_check(code: pa.Array) -> pa.Array:
    """uscc.check_char(code[:17]) == code[17], on upper-cased codes of the right shape."""
    total = None
    for i, w in enumerate(uscc.WEIGHTS):
        v = pc.multiply(
            pc.index_in(pc.utf8_slice_codeunits(code, i, i + 1), value_set=_USCC_VALUES).cast(pa.int64()), w
        )
        total = v if total is None else pc.add(total, v)
    rem = pc.subtract(total, pc.multiply(pc.divide(total, 31), 31))
    want = pc.subtract(31, rem)
    want = pc.if_else(pc.equal(want, 31), 0, want)
    last = pc.index_in(pc.utf8_slice_codeunits(code, 17, 18), value_set=_USCC_VALUES).cast(pa.int64())
    return pc.equal(last, want)


def _uscc(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    ok, text, why = _text(col, f)
    ok = pc.and_(ok, _match(text, _USCC))
    code = pc.ascii_upper(pc.if_else(ok, text, "0" * 18))
    ok = pc.and_(ok, _uscc_check(code))
    return ok, pc.if_else(ok, code, text), why


_PHONE = r"^(?:1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8}(?:(?:-|转|[eE][xX][tT]\.?|#)[0-9]{1,6})?)$"


def _phone(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    ok, text, why = _text(col, f)
    s = text
    if pc.any(_match(text, r"[ ()（）]|^\+86")).as_py():  # phone.normalize, skipped when no value needs it
        s = pc.replace_substring_regex(text, "[ ()（）]", "")
        s = pc.if_else(pc.starts_with(s, "+86"), pc.utf8_ltrim(pc.utf8_slice_codeunits(s, 3), "-"), s)
    ok = pc.and_(ok, _match(s, _PHONE))
    if f.max_len is not None:
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(s), f.max_len))
    return ok, s, why


_ITEM_TEXT = r"^(?P<material_id>[^:：]*)[:：](?P<quantity>[^:：]*)[:：](?P<unit>[^:：]*)$"
ITEM_TYPE = pa.struct([("material_id", pa.string()), ("quantity", pa.float64()), ("unit", pa.string())])
# converters.normalize_item's three converters, as fields: each part is stripped and required.
_ITEM_FIELDS = (
    Field("material_id", "物资编码", STRING, "R", max_len=32),
    Field("quantity", "数量", DECIMAL, "R", minimum=0, exclusive_minimum=True, scale=3),
    Field("unit", "计量单位", STRING, "R", max_len=10, units=True),
)


def _item_entries(parts: list[pa.Array], ref: date, ctx: ValidationContext) -> tuple[pa.Array, pa.Array]:
    """Flattened items (material_id, quantity, unit columns) -> (ok per item, canonical items)."""
    ok, values = None, []
    for f, part in zip(_ITEM_FIELDS, parts, strict=True):
        part_ok, value, _ = check(f, part, ref, ctx)
        ok = part_ok if ok is None else pc.and_(ok, part_ok)
        values.append(value)
    qty = values[1]
    if pa.types.is_integer(qty.type):  # an int quantity stays an int; float64 carries it exactly below 2**53
        ok = pc.and_(ok, pc.less(pc.abs(qty), 2**53))
    values[1] = qty.cast(pa.float64())
    values = [pc.if_else(ok, v, pa.scalar(None, v.type)) for v in values]
    return ok, pa.StructArray.from_arrays(values, fields=list(ITEM_TYPE))


def _no_null_lists(lists: pa.Array) -> pa.Array:
    """Null lists as empty ones, in a fresh array: a null slot may span values, which would shift the offsets."""
    return pc.if_else(pc.is_valid(lists), lists, pa.scalar([], lists.type))


def _items(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    """converters.items: the text form 'M001:10:箱; M002:5:个' (parse_items_text), or a list of structs."""
    t, n = col.type, len(col)
    if pa.types.is_string(t):
        lists = _no_null_lists(pc.split_pattern_regex(col, "[;；\n]+"))
        entries = pc.list_flatten(lists)
        kept = pc.invert(_match(entries, f"^[{_WS}]*$"))  # parse_items_text skips blank entries
        parts = pc.extract_regex(entries, _ITEM_TEXT)  # more or fewer than three parts: not mirrored
        fields = [pc.struct_field(parts, [i]) for i in range(3)]
        shaped = pc.is_valid(parts)
    elif (
        pa.types.is_list(t)
        and pa.types.is_struct(t.value_type)
        and sorted(t.value_type.field(i).name for i in range(t.value_type.num_fields)) == sorted(ITEM_TYPE.names)
    ):
        lists = _no_null_lists(col)
        entries = pc.list_flatten(lists)
        kept = pa.array([True] * len(entries), pa.bool_())
        fields = [pc.struct_field(entries, [t.value_type.get_field_index(name)]) for name in ITEM_TYPE.names]
        shaped = pc.is_valid(entries)  # a null item is not a dict: type.items
    else:
        return _false(n), pa.nulls(n, pa.list_(ITEM_TYPE)), f"{t} input"
    parent = pc.list_parent_indices(lists)
    item_ok, items = _item_entries(fields, ref, ctx)
    entry_ok = pc.or_(pc.invert(kept), pc.fill_null(pc.and_(shaped, item_ok), False))
    rows = pa.array(range(n), pa.int64())
    bad_rows = pc.filter(parent, pc.invert(entry_ok))
    ok = pc.and_(pc.invert(pc.is_in(rows, value_set=bad_rows)), pc.is_in(rows, value_set=pc.filter(parent, kept)))
    # The canonical lists: the kept items, with offsets from a running count of them.
    before = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(kept.cast(pa.int64()))])
    offsets = lists.offsets.cast(pa.int64())
    offsets = pc.take(before, pc.subtract(offsets, offsets[0]))
    value = pa.ListArray.from_arrays(
        offsets.cast(pa.int32()), items.filter(kept), type=pa.list_(ITEM_TYPE), mask=pc.is_null(col)
    )
    return ok, value, ""


FILE_TYPE = pa.struct([("sha256", pa.string()), ("size", pa.int64()), ("name", pa.string())])
_FILE_EXT = r"\.(?:[pP][dD][fF]|[dD][oO][cC][xX]?|[wW][pP][sS]|[oO][fF][dD])$"  # ATTACHMENT_TYPES, ASCII case only


def _file_ref(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    """converters.file_ref on a struct column with sha256 (text), size (integer) and name (text)."""
    t, n = col.type, len(col)
    names = {t.field(i).name: i for i in range(t.num_fields)} if pa.types.is_struct(t) else {}
    if not (names.keys() >= set(FILE_TYPE.names)) or not (
        pa.types.is_string(t.field(names["sha256"]).type)
        and pa.types.is_integer(t.field(names["size"]).type)
        and pa.types.is_string(t.field(names["name"]).type)
    ):
        return _false(n), pa.nulls(n, FILE_TYPE), f"{t} input"
    sha, size, name = (pc.struct_field(col, [names[k]]) for k in FILE_TYPE.names)
    size_ok, size = _integer_col(size)
    stripped = pc.utf8_trim(name, PY_WHITESPACE)
    ok = pc.and_(_match(sha, "^[0-9a-fA-F]{64}$"), pc.and_(size_ok, pc.greater_equal(size, 0)))
    ok = pc.and_(ok, pc.and_(pc.greater(pc.utf8_length(stripped), 0), _match(name, _FILE_EXT)))
    value = pa.StructArray.from_arrays([pc.ascii_lower(sha), size, stripped], fields=list(FILE_TYPE))
    return ok, value, ""


KINDS: dict[str, Callable[[Field, pa.Array, date, ValidationContext], Checked]] = {
    STRING: _string,
    INT: _int,
    DECIMAL: _decimal,
    DATE: date_column,
    ENUM: _enum,
    CATEGORY_CODE: _category,
    DIVISION_CODE: _division,
    USCC: _uscc,
    PHONE: _phone,
    ITEMS: _items,
    FILE_REF: _file_ref,
}


def _judge(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    """The kind's check; on text that repeats (codes, dates, units, quantities) once per distinct value.
    Every check judges each value alone, so judging the distinct ones and spreading the answers is the same."""
    kind = KINDS[f.kind]
    sample = col.slice(0, 1024)  # a cheap guess first: encoding a column of unique values costs more than it saves
    if (
        pa.types.is_string(col.type)
        and len(col) >= 64
        and pc.count_distinct(sample).as_py() * DISTINCT_SHARE <= len(sample)
    ):
        enc = pc.dictionary_encode(col)
        if len(enc.dictionary) * DISTINCT_SHARE <= len(col):
            ok, value, why = kind(f, enc.dictionary, ref, ctx)
            return pc.take(ok, enc.indices), pc.take(value, enc.indices), why
    return kind(f, col, ref, ctx)


DISTINCT_SHARE = 4  # spread the answers when at most a quarter of the values are distinct


def check(f: Field, column: pa.Array, ref: date, ctx: ValidationContext) -> Checked:
    """One field's column -> (ok, canonical, why): see the module docstring."""
    col = _plain(column)
    n = len(col)
    if pa.types.is_null(col.type):
        return (_false(n) if f.is_required else pa.array([True] * n, pa.bool_())), col, ""
    if pa.types.is_string(col.type):  # normalize: text is stripped, and empty text is absent
        col = pc.utf8_trim(col, PY_WHITESPACE)
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
    present = pc.is_valid(col)
    ok, value, why = _judge(f, col, ref, ctx)
    ok = pc.fill_null(pc.and_(present, ok), False)
    absent_ok = pc.invert(present) if not f.is_required else _false(n)
    value = pc.if_else(ok, value, pa.scalar(None, value.type)) if not pa.types.is_null(value.type) else value
    return pc.or_(ok, absent_ok), value, why
