"""docs/standard.md stays in step with the schema and the rule ids the code emits."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from gateway.standard.doc import RULE_IDS, fields_markdown, known_rule
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.validate import ValidationContext, validate

DOC = Path(__file__).resolve().parent.parent / "docs" / "standard.md"
CODE = Path(__file__).resolve().parent.parent / "gateway"


def test_doc_embeds_the_generated_fields_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert fields_markdown() in text, "regenerate with: gateway standard fields (and paste into docs/standard.md)"
    for name, rt in RECORD_TYPES.items():
        for f in rt.fields:
            assert f"| `{f.name}` | {f.label} |" in text, f"{name}.{f.name} missing from docs/standard.md"


def test_doc_lists_every_rule_id() -> None:
    text = DOC.read_text(encoding="utf-8")
    for rule in RULE_IDS:
        assert f"`{rule}`" in text


def test_every_documented_rule_id_is_used_in_the_code() -> None:
    sources = "".join(p.read_text(encoding="utf-8") for d in ("standard", "spreadsheet") for p in (CODE / d).glob("*.py"))
    for rule in RULE_IDS:
        if rule != "items.<规则>":
            assert f'"{rule}"' in sources, f"{rule} is documented but never emitted"


BAD_RECORDS = [
    ("stock", {"quantity": "x", "unit": "筐", "checked_date": "2023-02-30", "production_date": "2999-01-01",
               "expiry_date": "2020-01-01", "alert_threshold": -1, "condition": "?", "material_id": "m" * 40, "z": 1}),
    ("stock", {"checked_date": "昨天", "material_id": 3.5, "quantity": "1e999"}),
    ("material", {"shelf_life_months": "1.5", "category_code": "4000000", "unit_price": "abc"}),
    ("depot", {"region_code": "990000", "mgmt_unit_uscc": "91350100M000100Y4O", "contact_phone": "123", "longitude": 200}),
    ("depot", {"region_code": "12345", "mgmt_unit_uscc": "123", "latitude": 1}),
    ("agreement", {"party_a_uscc": "91AB0100M000100Y40", "party_b_uscc": "91350100M000100Y40",
                   "items": [{"material_id": "", "quantity": 0, "unit": "筐", "x": 1}], "attachment": {"name": "a.exe"},
                   "signed_date": "2025-01-02", "start_date": "2025-01-01"}),
    ("agreement", {"items": "M1:1:箱:x", "attachment": {"sha256": "a" * 64, "size": 1, "name": "a.exe"},
                   "start_date": "2025-01-02", "end_date": "2025-01-01", "signed_date": "2024-01-01"}),
    ("agreement", {"items": 5}),
    ("capacity", {"daily_capacity": 0, "ramp_up_hours": -1}),
]


def test_every_rule_the_validator_emits_is_documented() -> None:
    emitted = set()
    for record_type, data in BAD_RECORDS:
        emitted |= {e.rule for e in validate(record_type, data, context=ValidationContext(today=date(2025, 1, 1)))}
    assert len(emitted) >= 25
    assert sorted(r for r in emitted if not known_rule(r)) == []


def test_doc_example_message_is_what_the_validator_says() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = re.search(r"`(乙方信用代码“(\w+)”校验位错误：应为 \w)`", text)
    assert example is not None
    errors = validate("agreement", {"party_b_uscc": example.group(2)}, context=ValidationContext(today=date(2025, 1, 1)))
    assert example.group(1) in [e.message for e in errors]
