"""The demo folder: key pairs, gateway.toml, hub.toml and one mapping per source.

Keys, state and department data are kept across runs (unless --fresh); the
config files are rewritten every run because the ports are chosen afresh
(a port taken by something else must not break a re-run).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from gateway.demo.sample import DEPARTMENT_CODE, DEPARTMENT_NAME
from gateway.protocol.keys import new_key_pair

HUB_DEPARTMENT = "330110"  # the hub's own code, for its key id
DEFAULT_HUB_PORT = 8700
DEFAULT_GATEWAY_PORT = 8710

# The order sources are synced in: the hub checks that stock refers to known
# materials and depots, so those go first.
SOURCE_ORDER = ("materials", "depots", "legacy_depots", "agreements", "capacity", "stock", "township_drop")

MAPPINGS: dict[str, str] = {
    "materials": '''\
record_type = "material"
description = "物资基础信息表 wz_jcxx（部门物资管理系统）"

[fields]
material_id = "wzbm"
material_name = {column = "wzmc", transforms = ["trim"]}
category_code = "fldm"
spec_model = "ggxh"
unit = "jldw"
reserve_mode = {column = "cbfs", transforms = ["code"]}
brand = "pp"
manufacturer = "sccj"
shelf_life_months = "bzq"
unit_price = "dj"
usage_desc = "ytsm"
''',
    "depots": '''\
record_type = "depot"
description = "储备库基本信息表 ck_jbxx"

[fields]
depot_id = "ckbm"
depot_name = "ckmc"
depot_level = {column = "ckjb", transforms = ["code"]}
region_code = "xzqh"
address = "dz"
longitude = "jd"
latitude = "wd"
coord_system = "zbx"
mgmt_unit_name = "gldw"
mgmt_unit_uscc = "gldwxydm"
contact_name = "fzr"
contact_phone = "lxdh"
duty_phone = "zbdh"
floor_area_m2 = "mj"
capacity_m3 = "kr"
''',
    "stock": '''\
record_type = "stock"
description = "库存明细表 kc_mx（按 gxsj 增量读取）"

[fields]
material_id = "wzbm"
depot_id = "ckbm"
batch_no = "pch"
quantity = "sl"
unit = "jldw"
alert_threshold = "yjsl"
production_date = {column = "scrq", transforms = ["date"]}
inbound_date = {column = "rkrq", transforms = ["date"]}
expiry_date = {column = "yxq", transforms = ["date"]}
condition = {column = "zt", transforms = ["code"]}
reserve_level = {column = "cbjb", transforms = ["code"]}
responsible_unit = "zrdw"
responsible_name = "zrr"
responsible_phone = "zrrdh"
checked_date = {column = "hcrq", transforms = ["date"]}
''',
    "agreements": '''\
record_type = "agreement"
description = "协议储备合同表 xy_xx；协议物资以 JSON 存于 xywz 列"

[fields]
agreement_no = "xybh"
agreement_name = "xymc"
agreement_type = {column = "xylx", transforms = ["code"]}
party_a_name = "jfdw"
party_a_uscc = "jfxydm"
party_b_name = "yfqy"
party_b_uscc = "yfxydm"
party_b_contact = "yflxr"
party_b_phone = "yfdh"
signed_date = {column = "qdrq", transforms = ["date"]}
start_date = {column = "sxrq", transforms = ["date"]}
end_date = {column = "dqrq", transforms = ["date"]}
items = {column = "xywz", transforms = ["json"]}
response_hours = "xysx"
file_name = "wjmc"
status = {column = "zt", transforms = ["code"]}
''',
    "capacity": '''\
record_type = "capacity"
description = "生产能力企业表 scnl_qy"

[fields]
enterprise_name = "qymc"
enterprise_uscc = "qyxydm"
address = "qydz"
region_code = "xzqh"
contact_name = "lxr"
contact_phone = "lxdh"
material_id = "wzbm"
category_code = "fldm"
product_name = "cpmc"
spec_model = "ggxh"
daily_capacity = "rcn"
unit = "jldw"
max_supply_qty = "zdbz"
normal_stock = "cgkc"
ramp_up_hours = "zcsj"
agreement_no = "glxy"
''',
    "township_drop": '''\
record_type = "stock"
description = "乡镇（街道）上报的物资台账：共享文件夹中的 CSV（GB18030）和 XLSX"

[fields]
material_id = {column = "物资编码", transforms = ["trim"]}
depot_id = {column = "储备库编码", transforms = ["trim"]}
batch_no = "批次号"
quantity = {column = "数量", transforms = ["number"]}
unit = "单位"
production_date = {column = "生产日期", transforms = ["date"]}
expiry_date = {column = "有效期至", transforms = ["date"]}
checked_date = {column = "核查日期", transforms = ["date"]}
reserve_level = {constant = "6"}
responsible_name = "责任人"
responsible_phone = "联系电话"
''',
    "legacy_depots": '''\
record_type = "depot"
description = "旧仓储系统导出的村级储备室（GBK 编码 XML，带命名空间；列名为元素的本地名）"

[fields]
depot_id = "BM"
depot_name = "MC"
depot_level = "JB"
region_code = "QH"
address = "DZ"
mgmt_unit_name = "DW"
contact_name = "FZR"
contact_phone = "DH"
floor_area_m2 = "MJ"
''',
}


def free_port(preferred: int, host: str = "127.0.0.1") -> int:
    """`preferred` when nothing listens there, else a free ephemeral port."""
    for port in (preferred, 0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise OSError("no free TCP port on loopback")


def port_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why a port the user asked for cannot be used, or None (a requested port is never swapped silently)."""
    if not 1 <= port <= 65535:
        return f"端口 {port} 无效，应为 1–65535 / port {port} out of range"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
    except OSError as e:
        return f"端口 {port} 已被占用或不可用（{e.strerror}）/ port {port} is in use"
    finally:
        s.close()
    return None


@dataclass
class DemoLayout:
    root: Path
    hub_port: int
    gateway_port: int

    @property
    def gateway_config(self) -> Path:
        return self.root / "gateway.toml"

    @property
    def hub_config(self) -> Path:
        return self.root / "hub" / "hub.toml"

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


def _sources_toml(db_url: str, drop: Path, legacy: Path) -> str:
    sql = {
        "materials": ("material", "wz_jcxx", '["wzbm"]', "fingerprint", None),
        "depots": ("depot", "ck_jbxx", '["ckbm"]', "fingerprint", None),
        "agreements": ("agreement", "xy_xx", '["xybh"]', "fingerprint", None),
        "capacity": ("capacity", "scnl_qy", '["qyxydm", "wzbm"]', "fingerprint", None),
        "stock": ("stock", "kc_mx", '["id"]', "cursor", "gxsj"),
    }
    out = []
    for name in SOURCE_ORDER:
        if name in sql:
            rtype, table, keys, strategy, cursor = sql[name]
            out.append(f'''[[sources]]
name = "{name}"
type = "sql"
record_type = "{rtype}"
mapping = "mappings/{name}.toml"
strategy = "{strategy}"
every = "{'30s' if name == 'stock' else '5m'}"
[sources.settings]
url = "{db_url}"
table = "{table}"
key_columns = {keys}
''' + (f'cursor_column = "{cursor}"\n' if cursor else ""))
        elif name == "township_drop":
            out.append(f'''[[sources]]
name = "township_drop"
type = "folder"
record_type = "stock"
mapping = "mappings/township_drop.toml"
strategy = "append"
every = "30s"
[sources.settings]
path = "{drop.as_posix()}"
pattern = "*.csv;*.xlsx"
key_columns = ["物资编码", "储备库编码"]
completion = "atomic"   # the demo writes each file under a temporary name and renames it
''')
        else:
            out.append(f'''[[sources]]
name = "legacy_depots"
type = "xml"
record_type = "depot"
mapping = "mappings/legacy_depots.toml"
strategy = "snapshot"
every = "5m"
[sources.settings]
path = "{legacy.as_posix()}"
pattern = "*.xml"
mode = "snapshot"
completion = "atomic"
key_columns = ["BM"]
record_path = "ck:CK"
namespaces = {{ck = "http://yjgl.yuhang.example.cn/ckgl/2009"}}
''')
    return "\n".join(out)


def write_configs(layout: DemoLayout, department: dict[str, Path], api_token: str) -> None:
    """Keys (kept when present), gateway.toml, hub.toml and the mappings."""
    root = layout.root
    gw_key = root / "keys" / "gateway.key"
    hub_key = root / "hub" / "keys" / "hub.key"
    if not gw_key.exists():
        new_key_pair(gw_key, gw_key.with_suffix(".pub"))
    if not hub_key.exists():
        new_key_pair(hub_key, hub_key.with_suffix(".pub"))
    (root / "keys" / "hub.pub").write_text(hub_key.with_suffix(".pub").read_text())
    (root / "mappings").mkdir(parents=True, exist_ok=True)
    for name, text in MAPPINGS.items():
        (root / "mappings" / f"{name}.toml").write_text(text, encoding="utf-8")
    db_url = f"sqlite:///{department['database'].resolve().as_posix()}"
    layout.gateway_config.write_text(f'''# 演示前置机配置（gateway demo 生成；每次运行重写，密钥与状态保留）
[department]
code = "{DEPARTMENT_CODE}"
name = "{DEPARTMENT_NAME}"

[hub]
url = "{layout.hub_url}"
hub_key = "keys/hub.pub"
timeout = 10
batch_size = 200

[keys]
signing_key = "keys/gateway.key"
key_id = "{DEPARTMENT_CODE}-1"

[state]
path = "state/gateway.db"

[web]
listen = "127.0.0.1:{layout.gateway_port}"
api_token = "{api_token}"

[freshness]
default_days = 90
expiry_warn_days = [30, 90]

{_sources_toml(db_url, department["drop"].resolve(), department["legacy"].resolve())}''', encoding="utf-8")
    layout.hub_config.parent.mkdir(parents=True, exist_ok=True)
    layout.hub_config.write_text(f'''# 演示乡镇中心配置（gateway demo 生成）
[hub]
listen = "127.0.0.1:{layout.hub_port}"
database = "state/hub.db"
signing_key = "keys/hub.key"
key_id = "hub-{HUB_DEPARTMENT}-1"

[[departments]]
code = "{DEPARTMENT_CODE}"
name = "{DEPARTMENT_NAME}"

[[departments.keys]]
key_id = "{DEPARTMENT_CODE}-1"
public_key_file = "../keys/gateway.pub"
''', encoding="utf-8")
