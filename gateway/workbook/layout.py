"""The standard workbook's layout, shared by the template writer and the importer.

One sheet per record type, named by its Chinese label. Row 1 holds Chinese
headers (label, '*' when required); row 2 (hidden) the standard field names,
so imports stay unambiguous even if a clerk edits a header. Data start on
row 3. Agreement items live on their own sheet 协议物资, one row per item,
joined to 协议信息 by 协议编号. Attachments (file references) are uploaded
through the web form, not the workbook.
"""

from __future__ import annotations

from gateway.standard.schema import FILE_REF, ITEMS, RECORD_TYPES, Field, RecordType

INSTRUCTIONS_SHEET = "说明"
LISTS_SHEET = "代码表"
ITEMS_SHEET = "协议物资"
ERROR_HEADER = "错误说明"
HEADER_ROW = 1
NAMES_ROW = 2
FIRST_DATA_ROW = 3
TEMPLATE_ROWS = 10_000  # rows covered by drop-downs and column formats

ITEM_COLUMNS: tuple[Field, ...] = (
    Field("agreement_no", "协议编号", required="R", max_len=50),
    Field("material_id", "物资编码", required="R", max_len=32),
    Field("quantity", "数量", "decimal", required="R", minimum=0, exclusive_minimum=True, scale=3),
    Field("unit", "计量单位", required="R", max_len=10, units=True),
)


def sheet_fields(rt: RecordType) -> tuple[Field, ...]:
    """Fields that get a column on the record type's sheet."""
    return tuple(f for f in rt.fields if f.kind not in (ITEMS, FILE_REF))


def header(f: Field) -> str:
    return f.label + ("*" if f.is_required else "")


def sheet_to_type() -> dict[str, str]:
    """Sheet name (Chinese label or type name) -> record type name."""
    names: dict[str, str] = {}
    for name, rt in RECORD_TYPES.items():
        names[rt.label] = name
        names[name] = name
    return names
