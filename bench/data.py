"""Deterministic emergency-material source data in PostgreSQL, written with COPY.

The department database (default ``bench_src``) holds three tables in the
shape of a real department system (pinyin-abbreviated column names):

- ``wz_jcxx``  materials (物资基础信息): MATERIALS rows;
- ``ck_jbxx``  depots (储备库): DEPOTS rows;
- ``kc_mx``    stock (库存明细): N rows, key ``id``, cursor ``gxsj`` (updated_at).

Every value is a function of the row number, so two runs with the same N hold
the same data. `apply_changes` makes the incremental test's edit: 1% updates,
0.5% inserts and 0.2% deletes, a different slice of rows for each round.
"""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

MATERIALS = 2000
DEPOTS = 50
BASE_TIME = dt.datetime(2026, 1, 1, 8, 0, 0)

# (name, unit, GB/T 38565 category code)
ITEMS = (
    ("救灾帐篷", "顶", "1010100"), ("折叠床", "张", "1010200"), ("棉被", "床", "1010300"), ("棉大衣", "件", "1010400"),
    ("睡袋", "条", "1010500"), ("毛毯", "条", "1010600"), ("救生衣", "件", "2010100"), ("发电机组", "台", "2020100"),
    ("应急照明灯", "个", "2020200"), ("移动照明灯塔", "台", "2020300"), ("冲锋舟", "艘", "2030100"), ("抽水泵", "台", "2030200"),
    ("瓶装饮用水", "箱", "1020100"), ("方便食品", "箱", "1020200"), ("编织袋", "条", "3010100"), ("防汛沙袋", "袋", "3010200"),
    ("铁锹", "把", "3020100"), ("油锯", "台", "3020200"), ("医用口罩", "盒", "1030100"), ("消毒液", "桶", "1030200"),
)
DEPOT_NAMES = ("县级综合", "防汛物资", "森林防火", "地震救灾", "乡镇应急")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "建国", "海燕")
CONDITIONS = ("完好", "完好", "完好", "完好", "待维修", "待报废")
LEVELS = ("省", "市", "县", "县", "乡镇(街道)")
UNITS_ORG = ("县应急管理局", "县粮食和物资储备中心", "县水利局", "县林业局", "县卫生健康局")

STOCK_COLUMNS = (
    "id", "wzbm", "wzmc", "ckbm", "pch", "sl", "jldw", "yjsl", "scrq", "rkrq", "yxq", "zt", "cbjb", "zrdw", "zrr",
    "zrrdh", "hcrq", "gxsj",
)
STOCK_DDL = """
CREATE TABLE kc_mx (
    id bigint PRIMARY KEY, wzbm text NOT NULL, wzmc text, ckbm text NOT NULL, pch text NOT NULL,
    sl numeric(14,3) NOT NULL, jldw text NOT NULL, yjsl numeric(14,3), scrq date, rkrq date, yxq date,
    zt text, cbjb text, zrdw text, zrr text, zrrdh text, hcrq date NOT NULL, gxsj timestamp NOT NULL
)"""


def admin_url(base: str) -> str:
    return base.rsplit("/", 1)[0] + "/postgres"


def db_url(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + f"/{name}"


def recreate_database(pg: str, name: str) -> str:
    """Drop and create database `name` on the server of `pg` (a psycopg URL); returns its URL."""
    with psycopg.connect(admin_url(pg), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return db_url(pg, name)


def drop_database(pg: str, name: str) -> None:
    with psycopg.connect(admin_url(pg), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def person(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i // 7) % len(GIVEN)]


def phone(i: int) -> str:
    return f"13{(i * 7919) % 10}{(i * 104729) % 100_000_000:08d}"


def material_row(m: int) -> tuple:
    name, unit, cat = ITEMS[m % len(ITEMS)]
    return (f"WZ{m:06d}", f"{name}{m // len(ITEMS) + 1}型", cat, unit, "实物储备", BASE_TIME)


def depot_row(d: int) -> tuple:
    return (
        f"CK{d:04d}", f"{DEPOT_NAMES[d % len(DEPOT_NAMES)]}储备库{d + 1}号", LEVELS[d % len(LEVELS)],
        f"3301{(d % 9) + 1:02d}", f"浙江省杭州市某区应急路{d + 1}号", UNITS_ORG[d % len(UNITS_ORG)],
        person(d), phone(d), BASE_TIME,
    )


def stock_line(i: int, gxsj: dt.datetime | None = None) -> str:
    """One kc_mx row as a COPY text line."""
    m = (i * 7) % MATERIALS
    name, unit, _ = ITEMS[m % len(ITEMS)]
    d = (i * 13) % DEPOTS
    prod = dt.date(2024, 1, 1) + dt.timedelta(days=i % 600)
    inbound = prod + dt.timedelta(days=10 + i % 30)
    expiry = prod + dt.timedelta(days=730 + i % 365)
    checked = dt.date(2026, 1, 1) + dt.timedelta(days=i % 300)
    when = gxsj or (BASE_TIME + dt.timedelta(seconds=i))
    return "\t".join((
        str(i), f"WZ{m:06d}", f"{name}{m // len(ITEMS) + 1}型", f"CK{d:04d}", f"PC{2024 + i % 3}{i:09d}",
        f"{(i * 37) % 5000 + 1}.{i % 1000:03d}", unit, str(10 + i % 90), prod.isoformat(), inbound.isoformat(),
        expiry.isoformat(), CONDITIONS[i % len(CONDITIONS)], LEVELS[i % len(LEVELS)], UNITS_ORG[i % len(UNITS_ORG)],
        person(i), phone(i), checked.isoformat(), when.isoformat(sep=" "),
    )) + "\n"


def _copy_lines(cur: psycopg.Cursor, table: str, columns: tuple[str, ...], lines) -> None:  # type: ignore[no-untyped-def]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with cur.copy(stmt) as copy:
        buf: list[str] = []
        for line in lines:
            buf.append(line)
            if len(buf) >= 5000:
                copy.write("".join(buf))
                buf = []
        if buf:
            copy.write("".join(buf))


def generate(pg: str, name: str, rows: int) -> str:
    """A fresh source database `name` with materials, depots and `rows` stock rows; returns its URL."""
    url = recreate_database(pg, name)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE wz_jcxx (wzbm text PRIMARY KEY, wzmc text, fldm text, jldw text, cbfs text, gxsj timestamp)")
        cur.execute(
            "CREATE TABLE ck_jbxx (ckbm text PRIMARY KEY, ckmc text, ckjb text, xzqh text, dz text, gldw text,"
            " fzr text, lxdh text, gxsj timestamp)"
        )
        cur.execute(STOCK_DDL)
        with cur.copy("COPY wz_jcxx FROM STDIN") as copy:
            for m in range(MATERIALS):
                copy.write_row(material_row(m))
        with cur.copy("COPY ck_jbxx FROM STDIN") as copy:
            for d in range(DEPOTS):
                copy.write_row(depot_row(d))
        _copy_lines(cur, "kc_mx", STOCK_COLUMNS, (stock_line(i) for i in range(1, rows + 1)))
        cur.execute("CREATE INDEX kc_mx_gxsj ON kc_mx (gxsj, id)")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return url


def apply_changes(url: str, rows: int, round_no: int) -> dict[str, int]:
    """1% updates, 0.5% inserts, 0.2% deletes of the original `rows`; round_no picks another slice each time."""
    upd_mod, del_mod = 10 + round_no % 40, 50 + round_no % 40  # id % 100 and id % 500 slices never meet
    now = dt.datetime.now().replace(microsecond=0)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE kc_mx SET sl = sl + 1, hcrq = DATE '2026-10-01', gxsj = %s WHERE id <= %s AND id %% 100 = %s",
            (now, rows, upd_mod),
        )
        updated = cur.rowcount
        cur.execute("DELETE FROM kc_mx WHERE id <= %s AND id %% 500 = %s", (rows, del_mod))
        deleted = cur.rowcount
        cur.execute("SELECT coalesce(max(id), 0) FROM kc_mx")
        top = int(cur.fetchone()[0])
        n_ins = max(1, rows // 200)
        _copy_lines(cur, "kc_mx", STOCK_COLUMNS, (stock_line(i, now) for i in range(top + 1, top + 1 + n_ins)))
        conn.commit()
    return {"updated": updated, "inserted": n_ins, "deleted": deleted}


def copy_floor(src_url: str, pg: str, name: str) -> tuple[float, int]:
    """The physical floor: COPY kc_mx TO STDOUT piped into COPY FROM STDIN of a fresh database; (seconds, rows)."""
    import time

    dst_url = recreate_database(pg, name)
    with psycopg.connect(dst_url) as dst:
        dst.execute(STOCK_DDL)
        dst.commit()
    t0 = time.perf_counter()
    with psycopg.connect(src_url) as src, psycopg.connect(dst_url) as dst:
        with src.cursor().copy("COPY kc_mx TO STDOUT") as out, dst.cursor().copy("COPY kc_mx FROM STDIN") as into:
            for chunk in out:
                into.write(chunk)
        dst.commit()
        seconds = time.perf_counter() - t0
        n = int(dst.execute("SELECT count(*) FROM kc_mx").fetchone()[0])
    return seconds, n
