"""The 通报 (update report) as a document: for one period, the departments ranked, those needing action
by name, a summary paragraph and the trend over the periods before. The HTML page and the XLSX are
both drawn from one Bulletin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from gateway.hub.ui import charts
from gateway.hub.ui.stats import (
    LATE,
    MISSING,
    ON_TIME,
    DepartmentRow,
    Rates,
    department_status,
    freshness_scan,
    local_day,
    period_receipts,
)
from gateway.localtime import DEFAULT_TIMEZONE, local_text

TITLE = "应急物资数据更新情况通报"
GRADE_ORDER = {ON_TIME: 0, LATE: 1, MISSING: 2}
REJECT_ALERT = 0.10  # a department whose receipts are refused this often is named for action
TREND_PERIODS = 4


@dataclass
class TrendPoint(Rates):
    period: tuple[str, str]
    records: int = 0
    stale: int = 0
    receipts: int = 0
    rejected: int = 0

    @property
    def label(self) -> str:
        return f"{self.period[1][5:7]}月{self.period[1][8:10]}日"


@dataclass
class Bulletin:
    office: str
    period: tuple[str, str]
    generated_at: dt.datetime
    timezone: str
    warn_days: tuple[int, ...]
    rows: list[DepartmentRow]  # ranked, best first
    trend: list[TrendPoint] = field(default_factory=list)
    # department code -> the area (a township hub, [[relays]] name) that forwards it; empty at a township
    areas: dict[str, str] = field(default_factory=dict)

    def by_area(self) -> list[dict[str, object]]:
        """Per area (a lower hub) and its departments: subtotals, for a county's or city's 通报; [] at a township."""
        if not self.areas:
            return []
        acting = {d.code for d, _ in self.needing_action()}
        groups: dict[str, list[DepartmentRow]] = {}
        for d in self.rows:
            groups.setdefault(self.areas.get(d.code, "本级直报"), []).append(d)
        out = []
        for name, rows in groups.items():
            records = sum(d.records for d in rows)
            stale = sum(d.stale for d in rows)
            receipts, rejected = sum(d.receipts for d in rows), sum(d.rejected for d in rows)
            out.append({
                "area": name, "departments": len(rows), "records": records, "updated": sum(d.updated for d in rows),
                "stale": stale, "stale_share": stale / records if records else 0.0, "rejected": rejected,
                "reject_rate": rejected / receipts if receipts else 0.0,
                "acting": [d.name for d in rows if d.code in acting],
            })
        return sorted(out, key=lambda a: (-len(a["acting"]), -a["stale_share"], a["area"]))  # type: ignore[arg-type, operator]

    @property
    def title(self) -> str:
        return TITLE

    @property
    def issued(self) -> str:
        return local_text(self.generated_at, self.timezone, seconds=False)

    def needing_action(self) -> list[tuple[DepartmentRow, list[str]]]:
        """The departments to name, with why: nothing sent, stale records, expired stock, many rejects."""
        out = []
        for d in self.rows:
            why = []
            if d.verdict == MISSING:
                why.append("期内未报送")
            if d.stale:
                why.append(f"{d.stale} 条记录超期未更新或未核查")
            if d.expired:
                why.append(f"{d.expired} 批库存已过有效期")
            if d.receipts and d.reject_rate >= REJECT_ALERT:
                why.append(f"拒收率 {d.reject_rate:.1%}")
            if why:
                out.append((d, why))
        return out

    def totals(self) -> dict[str, int]:
        keys = ("records", "updated", "stale", "receipts", "rejected")
        t = {k: sum(getattr(d, k) for d in self.rows) for k in keys}
        t["expired"] = sum(d.expired for d in self.rows)
        t["soon"] = sum(d.expiring_within(self.warn_days[0]) for d in self.rows)
        return t

    def summary(self) -> str:
        t = self.totals()
        grades = {g: sum(1 for d in self.rows if d.verdict == g) for g in GRADE_ORDER}
        stale_share = t["stale"] / t["records"] if t["records"] else 0.0
        rate = t["rejected"] / t["receipts"] if t["receipts"] else 0.0
        act = self.needing_action()
        text = (
            f"本期（{self.period[0]}至{self.period[1]}）共 {len(self.rows)} 个部门，其中按时更新 {grades[ON_TIME]} 个、"
            f"更新滞后 {grades[LATE]} 个、未报送 {grades[MISSING]} 个。汇聚中心现存记录 {t['records']} 条，"
            f"期内更新 {t['updated']} 条；超期未更新或未核查 {t['stale']} 条，占 {stale_share:.1%}；"
            f"{self.warn_days[0]} 天内到期的库存 {t['soon']} 批，已过有效期 {t['expired']} 批。"
            f"期内回执 {t['receipts']} 条，被拒绝 {t['rejected']} 条，拒收率 {rate:.1%}。"
        )
        if act:
            text += f"请{'、'.join(d.name for d, _ in act)}按下列问题及时整改。"
        else:
            text += "各部门均按时更新，无需整改。"
        return text

    def reject_chart(self) -> charts.Markup:
        return charts.bar_chart("各部门拒收率", [(d.name, d.reject_rate) for d in self.rows], "#c0392b")

    def stale_chart(self) -> charts.Markup:
        return charts.bar_chart("各部门超期记录占比", [(d.name, d.stale_share) for d in self.rows], "#d68910")

    def trend_chart(self) -> charts.Markup:
        return charts.line_chart(
            f"近 {len(self.trend)} 期趋势（截至各期末）",
            [p.label for p in self.trend],
            [
                ("拒收率", [p.reject_rate for p in self.trend], "#c0392b"),
                ("超期记录占比", [p.stale_share for p in self.trend], "#d68910"),
            ],
        )


def rank(rows: Sequence[DepartmentRow]) -> list[DepartmentRow]:
    """Best first: by grade, then the smaller stale share, the lower reject rate, more updates."""
    return sorted(rows, key=lambda d: (GRADE_ORDER.get(d.verdict, 3), d.stale_share, d.reject_rate, -d.updated, d.code))


def trend_days(period: tuple[str, str], now: dt.datetime, periods: int = TREND_PERIODS) -> list[TrendPoint]:
    """This period and the ones of the same length before it, oldest first (counts still zero)."""
    start, end = (dt.date.fromisoformat(p) for p in period)
    length = (end - start).days + 1
    points = []
    for k in range(periods - 1, -1, -1):
        p_end = end - dt.timedelta(days=k * length)
        points.append(TrendPoint(((p_end - dt.timedelta(days=length - 1)).isoformat(), p_end.isoformat())))
    return points


def _measured_on(p: TrendPoint, now: dt.datetime, tz: str) -> dt.date:
    return min(local_day(now, tz), dt.date.fromisoformat(p.period[1]))


def build_bulletin(
    engine: Engine,
    period: tuple[str, str],
    freshness_days: Mapping[str, int] | None = None,
    office: str = "乡镇应急管理办公室",
    timezone: str = DEFAULT_TIMEZONE,
    warn_days: Sequence[int] = (30, 90),
    now: dt.datetime | None = None,
    areas: Mapping[str, str] | None = None,
) -> Bulletin:
    now = now or dt.datetime.now(dt.UTC)
    days_cfg = freshness_days or {}
    points = trend_days(period, now)
    with engine.connect() as conn:
        # One pass over the records for every period end: the table's and the trend's.
        scan = freshness_scan(conn, sorted({_measured_on(p, now, timezone) for p in points}), days_cfg, warn_days)
        for p in points:
            day = _measured_on(p, now, timezone)
            for (_dep, d), c in scan.items():
                if d == day:
                    p.records += c.live
                    p.stale += sum(c.stale_by_type.values())
            for _pushes, receipts_n, rejected, _accepted in period_receipts(conn, *p.period, tz=timezone).values():
                p.receipts += receipts_n
                p.rejected += rejected
    rows = department_status(engine, days_cfg, period, now=now, warn_days=warn_days, scan=scan, tz=timezone)
    return Bulletin(
        office=office,
        period=period,
        generated_at=now,
        timezone=timezone,
        warn_days=tuple(sorted(warn_days)),
        rows=rank(rows),
        trend=points,
        areas=dict(areas or {}),
    )
