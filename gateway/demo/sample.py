"""A sample department's data, as its own systems would hold it.

Column names are the department's (pinyin abbreviations, as legacy systems
use), not the standard's: the demo's mappings translate them. Dates are
relative to `today` so the demo stays valid whenever it runs. A few rows are
deliberately wrong (marked ``BAD_*``) so the demo shows rejections with reasons.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from gateway import localtime
from gateway.standard.uscc import check_char

COUNTY = "330110"  # 浙江省杭州市余杭区
DEPARTMENT_CODE = "330110-YJJ"
DEPARTMENT_NAME = "余杭区应急管理局"


def uscc(org_type: str, division: str, org_id: str) -> str:
    """A unified social credit code with a correct check character (GB 32100-2015)."""
    first17 = org_type + division + org_id
    return first17 + check_char(first17)


def bad_uscc(code: str) -> str:
    """The same code with a wrong check character."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    wrong = alphabet[(alphabet.index(code[17]) + 7) % 31]
    return code[:17] + wrong


# Units for the materials, as written in the department's system.
MATERIALS = [
    # wzbm, wzmc, fldm (GB/T 38565 structure), ggxh, jldw, pp, sccj, bzq(月), dj(元), ytsm
    ("WZ-0001", "单帐篷", "1010101", "3m×4m 棉帐篷", "顶", "雪豹", "浙江某帐篷厂", 96, "2850.00", "灾民临时安置"),
    ("WZ-0002", "棉被", "1010201", "2m×2.3m 3kg", "床", "恒源", "杭州某纺织公司", 60, "180.00", "受灾群众御寒"),
    ("WZ-0003", "折叠床", "1010202", "190cm×70cm 钢架", "张", "安居", "湖州某家具厂", 120, "260.00", "临时安置点"),
    ("WZ-0004", "柴油发电机", "2030101", "30kW 静音型", "台", "康明斯", "无锡某动力公司", 0, "42000.00", "应急供电"),
    ("WZ-0005", "救生衣", "2040101", "成人型 浮力≥150N", "件", "海安", "宁波某救生设备厂", 60, "95.00", "水上救援"),
    ("WZ-0006", "冲锋舟", "2040201", "5.2m 玻璃钢 8人", "艘", "神龙", "江苏某船艇公司", 0, "36500.00", "洪涝救援"),
    ("WZ-0007", "应急照明灯", "2030201", "LED 充电式", "个", "海洋王", "深圳某照明公司", 36, "420.00", "夜间照明"),
    ("WZ-0008", "瓶装饮用水", "1020101", "550ml×24", "箱", "农夫山泉", "杭州某饮品公司", 12, "28.00", "生活保障"),
    ("WZ-0009", "方便面", "1020102", "桶装 24桶/箱", "箱", "康师傅", "杭州某食品公司", 6, "72.00", "生活保障"),
    ("WZ-0010", "编织袋", "3010101", "90cm×55cm", "条", "", "金华某塑料厂", 0, "1.20", "防汛堵口"),
    ("WZ-0011", "铁锹", "3020101", "尖头 木柄", "把", "", "永康某五金厂", 0, "35.00", "抢险"),
    ("WZ-0012", "雨衣", "1010301", "分体式 XL", "件", "天堂", "杭州某雨具公司", 36, "48.00", "防汛人员"),
]

TOWNSHIPS = [
    # division code (12 digits), name
    ("330110005000", "仓前街道"),
    ("330110011000", "良渚街道"),
    ("330110012000", "闲林街道"),
    ("330110104000", "径山镇"),
    ("330110105000", "黄湖镇"),
]

VILLAGES = [
    ("330110104201", "径山村"),
    ("330110104202", "小古城村"),
    ("330110105201", "青山村"),
]


@dataclass
class SampleDepartment:
    """Every table and file of the sample department, as plain rows."""

    today: dt.date
    materials: list[dict] = field(default_factory=list)
    depots: list[dict] = field(default_factory=list)
    stock: list[dict] = field(default_factory=list)
    agreements: list[dict] = field(default_factory=list)
    capacity: list[dict] = field(default_factory=list)
    drop_csv: list[dict] = field(default_factory=list)  # township stock report, GB18030 CSV
    drop_xlsx: list[dict] = field(default_factory=list)  # another township's report, XLSX
    legacy_depots: list[dict] = field(default_factory=list)  # village stores from the old system, GBK XML
    # What the demo expects to be rejected: (source, key, reason fragment)
    expected_rejections: list[tuple[str, str, str]] = field(default_factory=list)


def _d(today: dt.date, days: int) -> str:
    return (today + dt.timedelta(days=days)).isoformat()


def build(today: dt.date | None = None) -> SampleDepartment:
    today = today or localtime.today()
    s = SampleDepartment(today=today)
    stamp = f"{_d(today, -1)} 17:30:00"

    for bm, mc, fl, gg, dw, pp, cj, bzq, dj, yt in MATERIALS:
        s.materials.append({
            "wzbm": bm, "wzmc": mc, "fldm": fl, "ggxh": gg, "jldw": dw, "cbfs": "实物储备",
            "pp": pp or None, "sccj": cj, "bzq": bzq or None, "dj": dj, "ytsm": yt, "gxsj": stamp,
        })

    gov = uscc("11", COUNTY, "002509731")  # 机关 (11): the county emergency bureau
    s.depots.append({
        "ckbm": "CK-001", "ckmc": "余杭区应急物资储备中心库", "ckjb": "县", "xzqh": COUNTY,
        "dz": "浙江省杭州市余杭区仓前街道龙潭路18号", "jd": "119.986512", "wd": "30.294371", "zbx": "CGCS2000",
        "gldw": DEPARTMENT_NAME, "gldwxydm": gov, "fzr": "王建国", "lxdh": "13757112345",
        "zbdh": "0571-86221110", "mj": "3200", "kr": "12800", "gxsj": stamp,
    })
    for i, (code, town) in enumerate(TOWNSHIPS, start=2):
        s.depots.append({
            "ckbm": f"CK-{i:03d}", "ckmc": f"{town}应急物资储备点", "ckjb": "乡镇(街道)", "xzqh": code,
            "dz": f"浙江省杭州市余杭区{town}人民路{10 + i * 7}号", "jd": f"{119.90 + i * 0.02:.6f}",
            "wd": f"{30.25 + i * 0.03:.6f}", "zbx": "CGCS2000", "gldw": f"{town}办事处",
            "gldwxydm": None, "fzr": ["李明", "张伟", "陈芳", "刘洋", "赵磊"][i - 2],
            "lxdh": f"139{5710 + i:04d}{2468 + i * 11:04d}"[:11], "zbdh": f"0571-8{6230000 + i * 1111}",
            "mj": str(300 + i * 40), "kr": str(900 + i * 120), "gxsj": stamp,
        })

    # Stock: the central depot holds every material; township points hold the basics.
    units = {m[0]: m[4] for m in MATERIALS}
    sid = 0

    def add_stock(wz: str, ck: str, pch: str, sl: str, scrq: int | None, yxq: int | None, hcrq: int, **kw: object) -> None:
        nonlocal sid
        sid += 1
        row = {
            "id": sid, "wzbm": wz, "ckbm": ck, "pch": pch, "sl": sl, "jldw": units[wz],
            "yjsl": kw.get("yjsl"), "scrq": _d(today, scrq) if scrq is not None else None,
            "rkrq": _d(today, (scrq or -200) + 20), "yxq": _d(today, yxq) if yxq is not None else None,
            "zt": "完好", "cbjb": "县" if ck == "CK-001" else "乡镇(街道)", "zrdw": DEPARTMENT_NAME,
            "zrr": "王建国", "zrrdh": "13757112345", "hcrq": _d(today, hcrq), "gxsj": stamp,
        }
        row.update({k: v for k, v in kw.items() if k != "yjsl"})
        s.stock.append(row)

    add_stock("WZ-0001", "CK-001", "2023-11", "500", -700, 2200, -20, yjsl="100")
    add_stock("WZ-0001", "CK-001", "2025-06", "300", -170, 2700, -20, yjsl="100")
    add_stock("WZ-0002", "CK-001", "2024-09", "2000", -420, 1400, -20, yjsl="500")
    add_stock("WZ-0003", "CK-001", "2024-03", "800", -600, 3000, -20)
    add_stock("WZ-0004", "CK-001", "2022-05", "12", -1300, None, -20)
    add_stock("WZ-0005", "CK-001", "2024-04", "1500", -580, 1250, -20, yjsl="300")
    add_stock("WZ-0006", "CK-001", "2021-08", "6", -1550, None, -20)
    add_stock("WZ-0007", "CK-001", "2025-01", "400", -330, 750, -20)
    add_stock("WZ-0008", "CK-001", "2026-A", "600", -300, 25, -20, yjsl="200")  # expires within 30 days
    add_stock("WZ-0009", "CK-001", "2026-B", "450", -120, 60, -20)  # expires within 90 days
    add_stock("WZ-0010", "CK-001", "2023-02", "20000", -1000, None, -130)  # not checked for 130 days: stale
    add_stock("WZ-0011", "CK-001", "2023-02", "1200", -1000, None, -20)
    add_stock("WZ-0012", "CK-001", "2024-12", "1000", -360, 720, -20)
    for i in range(2, len(TOWNSHIPS) + 2):
        ck = f"CK-{i:03d}"
        add_stock("WZ-0001", ck, "", str(20 + i * 5), -400, 2500, -10 - i)
        add_stock("WZ-0002", ck, "", str(100 + i * 30), -380, 1500, -10 - i)
        add_stock("WZ-0005", ck, "", str(50 + i * 10), -300, 1500, -10 - i)
    # BAD: a negative quantity typed by mistake.
    add_stock("WZ-0011", "CK-003", "", "-5", -200, None, -15)
    s.expected_rejections.append(("stock", "WZ-0011|CK-003|", "储备数量"))

    party_a = gov
    firms = [
        ("浙江雪豹帐篷有限公司", uscc("91", "330503", "MA2B3C4D5"), "孙建华", "13867201234"),
        ("杭州恒源纺织品有限公司", uscc("91", "330110", "MA27XK9L1"), "周婷", "15906712345"),
        ("宁波海安救生设备有限公司", uscc("91", "330206", "7045682X1"), "吴海涛", "13957423456"),
    ]
    items = [
        [{"material_id": "WZ-0001", "quantity": 300, "unit": "顶"}],
        [{"material_id": "WZ-0002", "quantity": 5000, "unit": "床"}, {"material_id": "WZ-0012", "quantity": 2000, "unit": "件"}],
        [{"material_id": "WZ-0005", "quantity": 3000, "unit": "件"}],
    ]
    for i, ((name, code, contact, phone), its) in enumerate(zip(firms, items, strict=True), start=1):
        s.agreements.append({
            "xybh": f"YHYJ-XY-2025-{i:03d}", "xymc": f"应急物资协议储备合同（{name[2:6]}）", "xylx": "协议(商业)储备",
            "jfdw": DEPARTMENT_NAME, "jfxydm": party_a, "yfqy": name, "yfxydm": code, "yflxr": contact,
            "yfdh": phone, "qdrq": _d(today, -300 + i), "sxrq": _d(today, -290 + i), "dqrq": _d(today, 800 + i * 30),
            "xywz": json.dumps(its, ensure_ascii=False), "xysx": 24 if i != 3 else 12,
            "wjmc": f"应急物资协议储备合同{i:03d}.pdf", "zt": "有效", "gxsj": stamp,
        })
    # BAD: the third firm's credit code was copied with a wrong check character.
    s.agreements[2]["yfxydm"] = bad_uscc(firms[2][1])
    s.expected_rejections.append(("agreement", "YHYJ-XY-2025-003", "乙方信用代码"))

    s.capacity = [
        {"qymc": firms[0][0], "qyxydm": firms[0][1], "qydz": "浙江省湖州市吴兴区织里镇工业园区8号", "xzqh": "330502",
         "lxr": firms[0][2], "lxdh": firms[0][3], "wzbm": "WZ-0001", "fldm": "1010101", "cpmc": "单帐篷",
         "ggxh": "3m×4m 棉帐篷", "rcn": "150", "jldw": "顶", "zdbz": "3000", "cgkc": "400", "zcsj": 48,
         "glxy": "YHYJ-XY-2025-001", "gxsj": stamp},
        {"qymc": firms[1][0], "qyxydm": firms[1][1], "qydz": "浙江省杭州市余杭区临平大道120号", "xzqh": COUNTY,
         "lxr": firms[1][2], "lxdh": firms[1][3], "wzbm": "WZ-0002", "fldm": "1010201", "cpmc": "棉被",
         "ggxh": "2m×2.3m 3kg", "rcn": "800", "jldw": "床", "zdbz": "20000", "cgkc": "3000", "zcsj": 24,
         "glxy": "YHYJ-XY-2025-002", "gxsj": stamp},
        {"qymc": firms[1][0], "qyxydm": firms[1][1], "qydz": "浙江省杭州市余杭区临平大道120号", "xzqh": COUNTY,
         "lxr": firms[1][2], "lxdh": firms[1][3], "wzbm": "WZ-0012", "fldm": "1010301", "cpmc": "雨衣",
         "ggxh": "分体式", "rcn": "1200", "jldw": "件", "zdbz": "30000", "cgkc": "5000", "zcsj": 12,
         "glxy": "YHYJ-XY-2025-002", "gxsj": stamp},
    ]

    # Township reports dropped into the shared folder (Chinese headers, as clerks type them).
    def report_row(wz: str, ck: str, pch: str, sl: str, scrq: str, yxq: str | None, hcrq: int, rr: str, dh: str) -> dict:
        return {"物资编码": wz, "储备库编码": ck, "批次号": pch, "数量": sl, "单位": units[wz], "生产日期": scrq,
                "有效期至": yxq or "", "核查日期": _d(today, hcrq), "责任人": rr, "联系电话": dh}

    s.drop_csv = [
        report_row("WZ-0001", "CJ-001", "", "8", _d(today, -500), _d(today, 2000), -7, "钱进", "13588123456"),
        report_row("WZ-0002", "CJ-001", "", "40", _d(today, -450), _d(today, 1300), -7, "钱进", "13588123456"),
        report_row("WZ-0008", "CJ-001", "", "30", _d(today, -100), _d(today, 200), -7, "钱进", "13588123456"),
        report_row("WZ-0011", "CJ-001", "", "15", _d(today, -900), None, -7, "钱进", "13588123456"),
        report_row("WZ-0005", "CJ-002", "", "20", _d(today, -300), _d(today, 1400), -9, "孔丽", "0571-88123456"),
        # BAD: a date that does not exist.
        report_row("WZ-0003", "CJ-002", "", "10", "2023-02-30", None, -9, "孔丽", "0571-88123456"),
    ]
    s.expected_rejections.append(("stock", "WZ-0003|CJ-002|", "生产日期"))
    s.drop_xlsx = [
        report_row("WZ-0001", "CJ-003", "", "6", _d(today, -520), _d(today, 1900), -12, "冯刚", "13605712345"),
        report_row("WZ-0002", "CJ-003", "", "25", _d(today, -460), _d(today, 1250), -12, "冯刚", "13605712345"),
        report_row("WZ-0007", "CJ-003", "", "10", _d(today, -200), _d(today, 900), -12, "冯刚", "13605712345"),
        report_row("WZ-0012", "CJ-003", "", "30", _d(today, -150), _d(today, 900), -12, "冯刚", "13605712345"),
    ]

    for i, (code, village) in enumerate(VILLAGES, start=1):
        s.legacy_depots.append({
            "BM": f"CJ-{i:03d}", "MC": f"{village}应急物资储备室", "JB": "6", "QH": code,
            "DZ": f"浙江省杭州市余杭区{village}村委会", "DW": f"{village}村民委员会", "FZR": ["钱进", "孔丽", "冯刚"][i - 1],
            "DH": ["13588123456", "0571-88123456", "13605712345"][i - 1], "MJ": str(40 + i * 10),
        })
    # BAD: a landline missing digits.
    s.legacy_depots.append({
        "BM": "CJ-004", "MC": "百丈村应急物资储备室", "JB": "6", "QH": "330110104203",
        "DZ": "浙江省杭州市余杭区百丈村村委会", "DW": "百丈村村民委员会", "FZR": "褚亮", "DH": "0571-123", "MJ": "45",
    })
    s.expected_rejections.append(("depot", "CJ-004", "联系电话"))
    return s
