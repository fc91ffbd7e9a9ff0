"""normalize()/validate(): canonical values out, every error of a record reported."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from gateway.standard import uscc
from gateway.standard.category import CategoryTable
from gateway.standard.validate import FieldError, ValidationContext, normalize, validate

TODAY = date(2025, 6, 30)
CTX = ValidationContext(today=TODAY)


def usc(body: str) -> str:
    return body + uscc.check_char(body)


def stock(**over: object) -> dict:
    rec = {"material_id": "M001", "depot_id": "D01", "quantity": "120", "unit": "顶", "checked_date": "2025-06-01"}
    rec.update(over)
    return rec


def agreement(**over: object) -> dict:
    rec = {
        "agreement_no": "XY-2025-001", "agreement_name": "帐篷代储协议", "agreement_type": "2",
        "party_a_name": "某县应急管理局", "party_a_uscc": usc("11350100MB0000001"),
        "party_b_name": "某某商贸有限公司", "party_b_uscc": usc("91350100M000100Y4"),
        "party_b_contact": "李四", "party_b_phone": "0591-87654321",
        "signed_date": "2025-01-10", "start_date": "2025-02-01", "end_date": "2027-01-31",
        "items": [{"material_id": "M001", "quantity": "500", "unit": "顶"}],
        "file_name": "帐篷代储协议.pdf", "status": "有效",
    }
    rec.update(over)
    return rec


def depot(**over: object) -> dict:
    rec = {
        "depot_id": "D01", "depot_name": "县级救灾物资储备库", "depot_level": "4", "region_code": "350121",
        "address": "某县某路1号", "mgmt_unit_name": "某县应急管理局", "contact_name": "王五",
        "contact_phone": "13800138000",
    }
    rec.update(over)
    return rec


def rules(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in errors]


def test_valid_stock_is_normalised_to_canonical_json_types() -> None:
    out, errors = normalize(
        "stock",
        stock(quantity=" 12.50 ", alert_threshold=Decimal("3.0"), production_date=datetime(2024, 5, 1, 8, 0),
              expiry_date="2026年5月1日", condition="完好", reserve_level=4, batch_no="", responsible_phone=13800138000.0),
        context=CTX,
    )
    assert errors == []
    assert out == {
        "material_id": "M001", "depot_id": "D01", "quantity": 12.5, "unit": "顶", "alert_threshold": 3,
        "production_date": "2024-05-01", "expiry_date": "2026-05-01", "condition": "1", "reserve_level": "4",
        "responsible_phone": "13800138000", "checked_date": "2025-06-01",
    }
    assert type(out["alert_threshold"]) is int


def test_decimal_rounds_to_the_field_scale_and_int_accepts_integral_forms() -> None:
    out, errors = normalize("material", {
        "material_id": "M1", "material_name": "帐篷", "category_code": 1010100, "unit": "顶", "reserve_mode": 1,
        "unit_price": "1,234.565", "shelf_life_months": "36",
    }, context=CTX)
    assert errors == []
    assert out["unit_price"] == 1234.57 and out["shelf_life_months"] == 36 and out["category_code"] == "1010100"
    out, _ = normalize("material", {"shelf_life_months": 12.0, "unit_price": 8}, context=CTX)
    assert out["shelf_life_months"] == 12 and out["unit_price"] == 8
    errors = validate("material", {"shelf_life_months": "1.5", "unit_price": "abc"}, context=CTX)
    assert ("shelf_life_months", "type.int") in rules(errors)
    assert ("unit_price", "type.decimal") in rules(errors)


@pytest.mark.parametrize(
    "given, code",
    [("实物储备", "1"), ("1", "1"), (1, "1"), (2.0, "2"), ("协议（商业）储备", "2"), ("3 生产能力储备", "3"),
     (" 生产能力储备 ", "3")],
)
def test_enum_accepts_code_int_or_chinese_label(given: object, code: str) -> None:
    out, errors = normalize("material", {"reserve_mode": given}, context=CTX)
    assert out["reserve_mode"] == code
    assert "reserve_mode" not in {e.field for e in errors}


def test_enum_rejects_unknown_value_listing_the_choices() -> None:
    (err,) = [e for e in validate("material", {"reserve_mode": "储备"}, context=CTX) if e.field == "reserve_mode"]
    assert err.rule == "enum" and "储备方式" in err.message and "1 实物储备" in err.message


def test_coordinate_system_names_are_case_insensitive() -> None:
    out, errors = normalize("depot", depot(longitude="119.296494", latitude=26.074508, coord_system="wgs84"), context=CTX)
    assert errors == [] and out["coord_system"] == "WGS84" and out["longitude"] == 119.296494


def test_five_mistakes_give_five_errors() -> None:
    errors = validate(
        "stock",
        {"material_id": "M001", "quantity": "-5", "unit": "筐", "checked_date": "2025-02-30",
         "production_date": "2099-01-01", "colour": "red"},
        context=CTX,
    )
    assert sorted(rules(errors)) == sorted([
        ("colour", "unknown_field"), ("quantity", "min"), ("unit", "unit"),
        ("checked_date", "date.invalid"), ("production_date", "not_future"),
    ])
    for e in errors:
        assert e.message and (e.label in e.message or e.rule == "unknown_field")


def test_required_fields_and_empty_strings() -> None:
    errors = validate("stock", {"material_id": "  ", "quantity": None, "unit": "", "checked_date": "2025-01-01"}, context=CTX)
    assert sorted(rules(errors)) == [("material_id", "required"), ("quantity", "required"), ("unit", "required")]
    assert {e.message for e in errors} == {"物资编码必填", "储备数量必填", "计量单位必填"}


def test_max_len_counts_characters() -> None:
    (err,) = validate("stock", stock(batch_no="批" * 33), context=CTX)
    assert (err.field, err.rule, err.label) == ("batch_no", "max_len", "批次号")
    assert "33" in err.message and "32" in err.message
    assert validate("stock", stock(batch_no="批" * 32), context=CTX) == []


def test_negative_and_zero_quantities() -> None:
    (err,) = validate("stock", stock(quantity=-0.5), context=CTX)
    assert (err.field, err.rule) == ("quantity", "min") and "储备数量不能小于 0" in err.message
    assert validate("stock", stock(quantity=0), context=CTX) == []
    cap = {"daily_capacity": 0}
    (err,) = [e for e in validate("capacity", cap, context=CTX) if e.field == "daily_capacity"]
    assert err.rule == "min" and "必须大于 0" in err.message


def test_not_future_uses_the_reference_date() -> None:
    assert validate("stock", stock(checked_date="2025-06-30"), context=CTX) == []
    (err,) = validate("stock", stock(checked_date="2025-07-01"), context=CTX)
    assert (err.field, err.rule) == ("checked_date", "not_future")
    assert validate("stock", stock(checked_date="2025-07-01"), today=date(2025, 7, 1)) == []
    # expiry dates may lie in the future
    assert validate("stock", stock(expiry_date="2030-01-01"), context=CTX) == []


def test_production_after_expiry_is_an_order_error() -> None:
    (err,) = validate("stock", stock(production_date="2024-05-02", expiry_date="2024-05-01"), context=CTX)
    assert (err.field, err.rule) == ("production_date", "date.order")
    assert "生产日期" in err.message and "有效期至" in err.message


def test_agreement_dates_must_be_signed_start_end_in_order() -> None:
    assert validate("agreement", agreement(), context=CTX) == []
    (err,) = validate("agreement", agreement(start_date="2025-01-01"), context=CTX)
    assert (err.field, err.rule) == ("signed_date", "date.order")
    (err,) = validate("agreement", agreement(end_date="2025-01-31"), context=CTX)
    assert (err.field, err.rule) == ("start_date", "date.order")


def test_coordinates_need_a_system_and_come_in_pairs() -> None:
    assert validate("depot", depot(), context=CTX) == []
    assert rules(validate("depot", depot(longitude=119.3, latitude=26.1), context=CTX)) == [
        ("coord_system", "coords_need_system")
    ]
    assert sorted(rules(validate("depot", depot(longitude=119.3, coord_system="CGCS2000"), context=CTX))) == [
        ("latitude", "coords_need_system")
    ]
    # an out-of-range longitude is still "given": the missing system is reported as well
    assert sorted(rules(validate("depot", depot(longitude=200, latitude=26.1), context=CTX))) == [
        ("coord_system", "coords_need_system"), ("longitude", "max"),
    ]


def test_uscc_fields_are_checked_and_upper_cased() -> None:
    code = usc("91350100M000100Y4")
    out, errors = normalize("agreement", agreement(party_b_uscc=code.lower()), context=CTX)
    assert errors == [] and out["party_b_uscc"] == code
    bad = code[:17] + ("0" if code[17] != "0" else "1")
    (err,) = validate("agreement", agreement(party_b_uscc=bad), context=CTX)
    assert (err.field, err.rule, err.label) == ("party_b_uscc", "uscc.check", "乙方信用代码")
    assert f"校验位错误：应为 {code[17]}" in err.message


def test_phone_and_division_and_category_fields() -> None:
    errors = validate("depot", depot(contact_phone="12345", region_code="35012", duty_phone="0591 8765 4321"), context=CTX)
    assert sorted(rules(errors)) == [("contact_phone", "phone.format"), ("region_code", "division.format")]
    errors = validate("material", {"material_id": "M", "material_name": "x", "category_code": "1000100", "unit": "个",
                                   "reserve_mode": "1"}, context=CTX)
    assert rules(errors) == [("category_code", "category.structure")]


def test_category_membership_only_with_a_table() -> None:
    rec = {"material_id": "M", "material_name": "x", "category_code": "1020100", "unit": "个", "reserve_mode": "1"}
    assert validate("material", rec, context=CTX) == []
    table = CategoryTable.from_rows([("1000000", "基本生活"), ("1010000", "甲")], "t1")
    (err,) = validate("material", rec, context=ValidationContext(today=TODAY, category_table=table))
    assert err.rule == "category.unknown" and "t1" in err.message


def test_context_from_settings_is_hashable_and_loads_the_table(tmp_path) -> None:
    p = tmp_path / "codes.csv"
    p.write_text("code,name\n1000000,基本生活保障物资\n", encoding="utf-8")
    ctx = ValidationContext.from_settings(category_codes=p, extra_units=["盏"], today=TODAY)
    assert hash(ctx) and ctx.category_table.name("1000000") == "基本生活保障物资"
    rec = {"material_id": "M", "material_name": "灯", "category_code": "2010000", "unit": "盏", "reserve_mode": "1"}
    assert [e.rule for e in validate("material", rec, context=ctx)] == ["category.unknown"]


def test_extra_units_from_the_context() -> None:
    (err,) = validate("stock", stock(unit="盏"), context=CTX)
    assert err.rule == "unit"
    assert validate("stock", stock(unit="盏"), context=ValidationContext(today=TODAY, extra_units=("盏",))) == []


def test_items_list_or_text_form_and_item_rules() -> None:
    out, errors = normalize("agreement", agreement(items="M001:500:顶；M002：20.5：箱"), context=CTX)
    assert errors == []
    assert out["items"] == [{"material_id": "M001", "quantity": 500, "unit": "顶"},
                            {"material_id": "M002", "quantity": 20.5, "unit": "箱"}]
    errors = validate("agreement", agreement(items=[{"material_id": "M1", "quantity": 0, "unit": "顶"},
                                                    {"material_id": "", "quantity": 2, "unit": "筐"}]), context=CTX)
    assert sorted(e.rule for e in errors) == ["items.min", "items.required", "items.unit"]
    assert all(e.field == "items" and "协议物资第" in e.message for e in errors)
    assert rules(validate("agreement", agreement(items=[]), context=CTX)) == [("items", "required")]


def test_file_ref() -> None:
    ref = {"sha256": "AB" * 32, "size": 1024, "name": "协议.ofd"}
    out, errors = normalize("agreement", agreement(attachment=ref), context=CTX)
    assert errors == [] and out["attachment"] == {"sha256": "ab" * 32, "size": 1024, "name": "协议.ofd"}
    (err,) = validate("agreement", agreement(attachment={**ref, "name": "协议.exe"}), context=CTX)
    assert err.rule == "file_ref.type"
    (err,) = validate("agreement", agreement(attachment={**ref, "size": -1}), context=CTX)
    assert err.rule == "file_ref.format"


@pytest.mark.parametrize(
    "given, expected",
    [("12", 12), ("007", 7), ("12.5", 12.5), (".5", 0.5), ("5.", 5), ("2.000", 2), ("12.3456", 12.346),
     ("1.0005", 1.001), ("1,200.25", 1200.25), ("1e3", 1000), ("１２", 12), (Decimal("0.0004"), 0), (3.14159, 3.142)],
)
def test_decimal_spellings_agree_with_decimal_half_up_rounding(given: object, expected: float) -> None:
    out, errors = normalize("stock", stock(quantity=given), context=CTX)
    assert errors == []
    assert out["quantity"] == expected and type(out["quantity"]) is type(expected)


def test_absurdly_large_numbers_are_rejected_not_crashed_on() -> None:
    (err,) = validate("stock", stock(quantity="1e999"), context=CTX)
    assert err.rule == "type.decimal" and "数值过大" in err.message
    (err,) = validate("stock", stock(quantity=1e300), context=CTX)
    assert err.rule == "type.decimal"
    errors = validate("material", {"shelf_life_months": "1e20"}, context=CTX)
    assert ("shelf_life_months", "type.int") in rules(errors)
    # A whole number as a number, as an Excel cell gives it: beyond 15 digits it is refused (beyond 64 bits
    # it could not even be encoded for the hub), not accepted to crash the outbox later.
    for big in (1.2e21, 10**16, -(10**15), 2**70):
        errors = validate("material", {"shelf_life_months": big}, context=CTX)
        assert ("shelf_life_months", "type.int") in rules(errors)
        assert any("数值过大" in e.message for e in errors)
    (err,) = validate("stock", stock(quantity=10**16), context=CTX)
    assert err.rule == "type.decimal" and "数值过大" in err.message
    mat = {"material_id": "WZ-1", "material_name": "折叠床", "category_code": "1010100", "unit": "张", "reserve_mode": "1"}
    out, errors = normalize("material", {**mat, "shelf_life_months": 10**15 - 1}, context=CTX)
    assert errors == [] and out["shelf_life_months"] == 10**15 - 1


def test_field_error_as_dict() -> None:
    (err,) = validate("stock", stock(quantity="x"), context=CTX)
    assert err.as_dict() == {"field": "quantity", "label": "储备数量", "value": "x", "rule": "type.decimal",
                             "message": "储备数量应为数字，实际为“x”"}


def test_field_error_as_dict_is_json_ready() -> None:
    import json

    errors = validate("stock", stock(quantity=Decimal("-1.5"), checked_date=datetime(2030, 1, 1, 8), extra=date(2020, 1, 2)),
                      context=CTX)
    dumped = json.loads(json.dumps([e.as_dict() for e in errors], ensure_ascii=False))
    assert {d["field"]: d["value"] for d in dumped} == {"extra": "2020-01-02", "quantity": "-1.5",
                                                         "checked_date": "2030-01-01T08:00:00"}


@pytest.mark.parametrize("name", ["material", "depot", "stock", "agreement", "capacity"])
def test_values_of_any_odd_type_become_errors_not_crashes(name: str) -> None:
    from gateway.standard.schema import RECORD_TYPES

    for odd in ([], {}, [1], {"a": 1}, object(), True, b"x", float("nan"), float("inf"), Decimal("NaN"), 1 + 2j):
        data = {f.name: odd for f in RECORD_TYPES[name].fields}
        out, errors = normalize(name, data, context=CTX)
        assert out == {}, odd
        assert {e.field for e in errors} == set(data)
        assert all(e.message for e in errors)


def test_unknown_record_type() -> None:
    with pytest.raises(KeyError):
        normalize("vehicle", {})
