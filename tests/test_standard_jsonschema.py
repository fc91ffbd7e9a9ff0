"""The exported JSON Schema accepts what normalize() produces and rejects malformed records."""

from __future__ import annotations

import json
from datetime import date

import jsonschema  # test extra: a real Draft 2020-12 validator to check our export against
import pytest

from gateway.standard.jsonschema import json_schema
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.uscc import check_char
from gateway.standard.validate import ValidationContext, normalize

CTX = ValidationContext(today=date(2025, 6, 30))


def usc(body: str) -> str:
    return body + check_char(body)


SAMPLES = {
    "material": {"material_id": "M1", "material_name": "帐篷", "category_code": "1010100", "unit": "顶",
                 "reserve_mode": "实物储备", "unit_price": "1850.50", "shelf_life_months": "60"},
    "depot": {"depot_id": "D1", "depot_name": "县库", "depot_level": "县", "region_code": "350121",
              "address": "某路1号", "longitude": "119.296494", "latitude": "26.074508", "coord_system": "CGCS2000",
              "mgmt_unit_name": "县应急局", "mgmt_unit_uscc": usc("11350100MB0000001"), "contact_name": "王五",
              "contact_phone": "0591-87654321"},
    "stock": {"material_id": "M1", "depot_id": "D1", "quantity": "120.5", "unit": "顶", "checked_date": "2025-06-01",
              "condition": "完好", "production_date": "2024-01-01", "expiry_date": "2029-01-01"},
    "agreement": {"agreement_no": "XY-1", "agreement_name": "代储", "agreement_type": "2", "party_a_name": "甲",
                  "party_a_uscc": usc("11350100MB0000001"), "party_b_name": "乙", "party_b_uscc": usc("91350100M000100Y4"),
                  "party_b_contact": "李", "party_b_phone": "13900139000", "signed_date": "2025-01-10",
                  "start_date": "2025-02-01", "end_date": "2027-01-31", "items": "M1:500:顶", "file_name": "协议.pdf",
                  "attachment": {"sha256": "a" * 64, "size": 10, "name": "协议.PDF"}, "status": "有效"},
    "capacity": {"enterprise_name": "某厂", "enterprise_uscc": usc("91350100M000100Y4"), "address": "工业区",
                 "contact_name": "赵", "contact_phone": "13800138000", "material_id": "M1", "category_code": "2990000",
                 "product_name": "帐篷", "daily_capacity": "300", "unit": "顶"},
}


@pytest.mark.parametrize("name", list(RECORD_TYPES))
def test_normalised_records_validate_against_their_schema(name: str) -> None:
    schema = json_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    record, errors = normalize(name, SAMPLES[name], context=CTX)
    assert errors == []
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert list(validator.iter_errors(json.loads(json.dumps(record)))) == []


def test_invalid_stock_is_rejected_for_each_mistake() -> None:
    validator = jsonschema.Draft202012Validator(json_schema("stock"))
    bad = {"material_id": "M" * 33, "quantity": -1, "unit": "顶", "condition": "9", "checked_date": "2025/06/01",
           "colour": "red"}
    found = {(tuple(e.absolute_path), e.validator) for e in validator.iter_errors(bad)}
    assert (("material_id",), "maxLength") in found
    assert (("quantity",), "minimum") in found
    assert (("condition",), "enum") in found
    assert (("checked_date",), "pattern") in found
    assert ((), "additionalProperties") in found
    bad.pop("colour")
    bad.pop("checked_date")
    assert ((), "required") in {(tuple(e.absolute_path), e.validator) for e in validator.iter_errors(bad)}


def test_depot_coordinates_need_system_in_schema_too() -> None:
    validator = jsonschema.Draft202012Validator(json_schema("depot"))
    record, _ = normalize("depot", SAMPLES["depot"], context=CTX)
    record.pop("coord_system")
    assert {e.validator for e in validator.iter_errors(record)} == {"dependentRequired"}


def test_labels_codes_and_required_come_from_the_schema() -> None:
    whole = json_schema()
    assert set(whole["$defs"]) == set(RECORD_TYPES)
    jsonschema.Draft202012Validator.check_schema(whole)
    for name, rt in RECORD_TYPES.items():
        node = whole["$defs"][name]
        assert node["title"] == rt.label
        assert node["required"] == list(rt.required_fields)
        for f in rt.fields:
            prop = node["properties"][f.name]
            assert prop["title"] == f.label
            if f.max_len and f.kind not in ("items", "file_ref"):
                assert prop["maxLength"] == f.max_len
            if f.codes:
                assert prop["enum"] == list(f.codes)
                assert [o["title"] for o in prop["oneOf"]] == list(f.codes.values())
    mode = whole["$defs"]["material"]["properties"]["reserve_mode"]
    assert {"const": "1", "title": "实物储备"} in mode["oneOf"]


def test_unknown_type() -> None:
    with pytest.raises(KeyError):
        json_schema("vehicle")
