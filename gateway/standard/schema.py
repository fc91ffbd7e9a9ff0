"""The standard emergency-material schema as data.

One definition that validation, spreadsheet templates, web forms, JSON Schema
and the hub all read. When a region publishes its exact element list, the
change is an edit of this file's tables, not of code that uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

SCHEMA_VERSION = "2026.1"

# Field kinds. Each kind has one validator in gateway.standard.validate.
STRING = "string"
INT = "int"
DECIMAL = "decimal"
DATE = "date"
ENUM = "enum"
CATEGORY_CODE = "category_code"  # GB/T 38565-2020, 7 digits
DIVISION_CODE = "division_code"  # GB/T 2260 (+ township/village), 6 or 12 digits
USCC = "uscc"  # GB 32100-2015 unified social credit code
PHONE = "phone"
ITEMS = "items"  # agreement items: list of {material_id, quantity, unit}
FILE_REF = "file_ref"  # {"sha256":..., "size":..., "name":...} uploaded to the hub

REQUIRED = "R"
OPTIONAL = "O"
CONDITIONAL = "C"

RECORD_TYPE_NAMES = ("material", "depot", "stock", "agreement", "capacity")


def _codes(*pairs: tuple[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(pairs))


RESERVE_MODES = _codes(("1", "实物储备"), ("2", "协议(商业)储备"), ("3", "生产能力储备"))
LEVELS = _codes(
    ("1", "中央(区域)"), ("2", "省"), ("3", "市"), ("4", "县"), ("5", "乡镇(街道)"), ("6", "村(社区)")
)
COORD_SYSTEMS = _codes(("CGCS2000", "CGCS2000"), ("WGS84", "WGS84"), ("GCJ02", "GCJ02"))
CONDITIONS = _codes(("1", "完好"), ("2", "待维修"), ("3", "待报废"))
AGREEMENT_TYPES = _codes(("2", "协议(商业)储备"), ("3", "生产能力储备"))
AGREEMENT_STATUSES = _codes(("1", "有效"), ("2", "到期"), ("3", "终止"))
CATEGORY_LEVEL1 = _codes(
    ("1", "基本生活保障物资"), ("2", "应急装备及配套物资"), ("3", "工程材料与机械加工设备")
)

# Units of measure; deployments may extend through the config (standard.extra_units).
UNITS: tuple[str, ...] = (
    "个", "件", "台", "套", "箱", "顶", "张", "床", "条", "双", "瓶", "袋", "桶", "吨",
    "千克", "公斤", "克", "升", "毫升", "米", "千米", "平方米", "立方米", "卷", "把", "只",
    "辆", "艘", "块", "盒", "包", "支", "副", "组", "根", "部", "具", "架", "册", "片", "对",
)

ATTACHMENT_TYPES = ("pdf", "doc", "docx", "wps", "ofd")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = STRING
    required: str = OPTIONAL
    max_len: int | None = None
    codes: Mapping[str, str] | None = None
    minimum: float | None = None
    exclusive_minimum: bool = False  # True: value must be > minimum
    maximum: float | None = None
    scale: int | None = None  # decimal places kept
    not_future: bool = False  # event dates are never in the future
    units: bool = False  # value must come from UNITS (extendable)
    confidential: bool = False  # withheld from sharing unless the reader's role allows it
    help: str = ""

    @property
    def is_required(self) -> bool:
        return self.required == REQUIRED


@dataclass(frozen=True)
class RecordType:
    name: str
    label: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    # Record-level rules (ids understood by gateway.standard.validate).
    rules: tuple[str, ...] = ()
    field_map: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_map", MappingProxyType({f.name: f for f in self.fields}))

    def __getitem__(self, name: str) -> Field:
        return self.field_map[name]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.is_required)


def _f(name: str, label: str, kind: str = STRING, required: str = OPTIONAL, **kw: object) -> Field:
    return Field(name, label, kind, required, **kw)  # type: ignore[arg-type]


R, O, C = REQUIRED, OPTIONAL, CONDITIONAL

MATERIAL = RecordType(
    "material",
    "应急物资基础信息",
    key=("material_id",),
    fields=(
        _f("material_id", "物资编码", STRING, R, max_len=32),
        _f("material_name", "物资名称", STRING, R, max_len=100),
        _f("category_code", "物资分类代码", CATEGORY_CODE, R, max_len=7),
        _f("spec_model", "规格型号", STRING, O, max_len=100),
        _f("unit", "计量单位", STRING, R, max_len=10, units=True),
        _f("reserve_mode", "储备方式", ENUM, R, codes=RESERVE_MODES),
        _f("brand", "品牌", STRING, O, max_len=100),
        _f("manufacturer", "生产厂家", STRING, O, max_len=100),
        _f("shelf_life_months", "保质期(月)", INT, O, minimum=0),
        _f("unit_price", "单价(元)", DECIMAL, O, minimum=0, scale=2),
        _f("usage_desc", "用途说明", STRING, O, max_len=200),
    ),
)

DEPOT = RecordType(
    "depot",
    "应急物资储备库信息",
    key=("depot_id",),
    fields=(
        _f("depot_id", "储备库编码", STRING, R, max_len=32),
        _f("depot_name", "储备库名称", STRING, R, max_len=100),
        _f("depot_level", "储备库级别", ENUM, R, codes=LEVELS),
        _f("region_code", "行政区划代码", DIVISION_CODE, R, max_len=12),
        _f("address", "详细地址", STRING, R, max_len=200),
        _f("longitude", "经度", DECIMAL, O, minimum=73, maximum=136, scale=6),
        _f("latitude", "纬度", DECIMAL, O, minimum=3, maximum=54, scale=6),
        _f("coord_system", "坐标系", ENUM, C, codes=COORD_SYSTEMS, help="填写经纬度时必填"),
        _f("mgmt_unit_name", "管理单位", STRING, R, max_len=100),
        _f("mgmt_unit_uscc", "管理单位信用代码", USCC, O, max_len=18),
        _f("contact_name", "负责人", STRING, R, max_len=50),
        _f("contact_phone", "联系电话", PHONE, R, max_len=30, confidential=True),
        _f("duty_phone", "24小时值班电话", PHONE, O, max_len=30),
        _f("floor_area_m2", "库房面积(m²)", DECIMAL, O, minimum=0, scale=2),
        _f("capacity_m3", "库容(m³)", DECIMAL, O, minimum=0, scale=2),
    ),
    rules=("coords_need_system",),
)

STOCK = RecordType(
    "stock",
    "应急物资管理信息",
    key=("material_id", "depot_id", "batch_no"),
    fields=(
        _f("material_id", "物资编码", STRING, R, max_len=32),
        _f("depot_id", "储备库编码", STRING, C, max_len=32, help="实物储备时必填"),
        _f("batch_no", "批次号", STRING, O, max_len=32, help="为空表示单一批次"),
        _f("quantity", "储备数量", DECIMAL, R, minimum=0, scale=3),
        _f("unit", "计量单位", STRING, R, max_len=10, units=True),
        _f("alert_threshold", "预警数量", DECIMAL, O, minimum=0, scale=3),
        _f("production_date", "生产日期", DATE, O, not_future=True),
        _f("inbound_date", "入库日期", DATE, O, not_future=True),
        _f("expiry_date", "有效期至", DATE, O),
        _f("condition", "物资状态", ENUM, O, codes=CONDITIONS),
        _f("reserve_level", "储备级别", ENUM, O, codes=LEVELS),
        _f("responsible_unit", "责任单位", STRING, O, max_len=100),
        _f("responsible_name", "责任人", STRING, O, max_len=50),
        _f("responsible_phone", "责任人电话", PHONE, O, max_len=30, confidential=True),
        _f("checked_date", "核查日期", DATE, R, not_future=True),
    ),
    rules=("production_before_expiry",),
)

AGREEMENT = RecordType(
    "agreement",
    "协议信息",
    key=("agreement_no",),
    fields=(
        _f("agreement_no", "协议编号", STRING, R, max_len=50),
        _f("agreement_name", "协议名称", STRING, R, max_len=200),
        _f("agreement_type", "协议类型", ENUM, R, codes=AGREEMENT_TYPES),
        _f("party_a_name", "甲方单位", STRING, R, max_len=100),
        _f("party_a_uscc", "甲方信用代码", USCC, R, max_len=18),
        _f("party_b_name", "乙方企业", STRING, R, max_len=100),
        _f("party_b_uscc", "乙方信用代码", USCC, R, max_len=18),
        _f("party_b_contact", "乙方联系人", STRING, R, max_len=50),
        _f("party_b_phone", "乙方电话", PHONE, R, max_len=30, confidential=True),
        _f("signed_date", "签订日期", DATE, R, not_future=True),
        _f("start_date", "生效日期", DATE, R),
        _f("end_date", "到期日期", DATE, R),
        _f("items", "协议物资", ITEMS, R, help="物资编码、数量、计量单位，至少一项"),
        _f("response_hours", "响应时限(小时)", INT, O, minimum=0, exclusive_minimum=True),
        _f("file_name", "协议文件名称", STRING, R, max_len=200),
        _f("attachment", "协议附件", FILE_REF, O),
        _f("status", "状态", ENUM, R, codes=AGREEMENT_STATUSES),
    ),
    rules=("signed_start_end_order",),
)

CAPACITY = RecordType(
    "capacity",
    "生产能力信息",
    key=("enterprise_uscc", "material_id"),
    fields=(
        _f("enterprise_name", "企业名称", STRING, R, max_len=100),
        _f("enterprise_uscc", "企业信用代码", USCC, R, max_len=18),
        _f("address", "企业地址", STRING, R, max_len=200),
        _f("region_code", "行政区划代码", DIVISION_CODE, O, max_len=12),
        _f("contact_name", "联系人", STRING, R, max_len=50),
        _f("contact_phone", "联系电话", PHONE, R, max_len=30, confidential=True),
        _f("material_id", "物资编码", STRING, R, max_len=32),
        _f("category_code", "物资分类代码", CATEGORY_CODE, R, max_len=7),
        _f("product_name", "产品名称", STRING, R, max_len=100),
        _f("spec_model", "规格型号", STRING, O, max_len=100),
        _f("daily_capacity", "日产能", DECIMAL, R, minimum=0, exclusive_minimum=True, scale=3),
        _f("unit", "计量单位", STRING, R, max_len=10, units=True),
        _f("max_supply_qty", "最大保障数量", DECIMAL, O, minimum=0, scale=3),
        _f("normal_stock", "常态库存", DECIMAL, O, minimum=0, scale=3),
        _f("ramp_up_hours", "转产时间(小时)", INT, O, minimum=0),
        _f("agreement_no", "关联协议编号", STRING, O, max_len=50),
        _f("plan_attachment", "生产保障方案附件", FILE_REF, O),
    ),
)

RECORD_TYPES: Mapping[str, RecordType] = MappingProxyType(
    {t.name: t for t in (MATERIAL, DEPOT, STOCK, AGREEMENT, CAPACITY)}
)

# Envelope fields set by the gateway on every record (see docs/protocol.md).
ENVELOPE_FIELDS = ("type", "department", "key", "op", "seq", "version", "updated_at", "provenance")
OPS = ("upsert", "delete")


def record_type(name: str) -> RecordType:
    try:
        return RECORD_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown record type {name!r}; expected one of {', '.join(RECORD_TYPES)}") from None


def record_key(type_name: str, data: Mapping[str, object]) -> str:
    """The record's natural key as one string: key parts joined by '|' (empty part = '')."""
    rt = RECORD_TYPES[type_name]
    if len(rt.key) == 1:
        v = data.get(rt.key[0])
        return "" if v is None else str(v)
    return "|".join("" if data.get(k) is None else str(data.get(k)) for k in rt.key)
