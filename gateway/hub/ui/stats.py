"""Queries behind the operators' pages: receipts and log pages (keyset), department status, the 通报.

Date filters are turned into seq/id bounds through the time indexes once, so
every page then walks only the primary key (or a (column, seq) index) and
stays fast however long the log grows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, and_, case, func, literal_column, select
from sqlalchemy.engine import Connection

from gateway.hub.tables import batches, departments, receipt_log, receipts, record_history, records
from gateway.localtime import zone
from gateway.standard.freshness import DEFAULT_PERIOD_DAYS, DEFAULT_WARN_DAYS, assess, parse_date

PAGE = 50
DEFAULT_FRESHNESS_DAYS = DEFAULT_PERIOD_DAYS
STATUS_LABELS = {"accepted": "已接收", "rejected": "被拒绝", "duplicate": "重复", "stale": "过期版本"}
KIND_LABELS = {"batch": "批次", "refused": "拒绝请求", "read": "共享读取", "attachment": "附件"}
# The refusal codes of the protocol (docs/protocol.md) as an operator reads them; the code stays beside.
REFUSAL_LABELS = {
    "bad_signature": "签名无效", "bad_signature_input": "签名参数有误", "missing_signature": "缺少签名",
    "bad_digest": "内容摘要格式有误", "missing_digest": "缺少内容摘要", "digest_mismatch": "内容与摘要不符",
    "unknown_key": "未登记的密钥", "key_revoked": "密钥已吊销", "clock_window": "请求时间超出允许范围",
    "replay": "重放的请求", "department_mismatch": "部门与密钥不符", "record_type_not_allowed": "无权报送该类记录",
    "too_large": "请求过大", "malformed_request": "请求格式有误", "malformed_batch": "批次格式有误",
    "duplicate_member": "JSON 成员重复", "unsupported_protocol": "不支持的协议版本",
    "batch_id_conflict": "批次号冲突（内容不同）", "read_not_granted": "未获授权读取", "not_found": "不存在",
    "attachment_damaged": "附件已损坏", "attachment_type": "附件类型不支持", "store_unavailable": "存储暂不可用",
}
ON_TIME, LATE, MISSING = "按时更新", "更新滞后", "未报送"


@dataclass
class Filters:
    department: str = ""
    date_from: str = ""  # YYYY-MM-DD, inclusive
    date_to: str = ""  # YYYY-MM-DD, inclusive
    status: str = ""
    record_type: str = ""
    key: str = ""
    kind: str = ""
    log_seq: str = ""  # the receipts of one receipt-log entry (one batch)
    tz: str = "UTC"  # the zone the dates are days of (the hub's timezone); not a request argument

    @classmethod
    def from_args(cls, args: Mapping[str, str], tz: str = "UTC") -> Filters:
        f = cls(**{k: (args.get(k) or "").strip() for k in cls.__dataclass_fields__ if k != "tz"}, tz=tz)
        for name in ("date_from", "date_to"):
            try:
                if getattr(f, name):
                    dt.date.fromisoformat(getattr(f, name))
            except ValueError:
                setattr(f, name, "")
        return f

    def as_args(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v and k != "tz"}


def _day_after(d: str) -> str:
    return (dt.date.fromisoformat(d) + dt.timedelta(days=1)).isoformat()


def local_day(now: dt.datetime, tz: str = "UTC") -> dt.date:
    """The day it is at `now` in zone `tz`: from 16:00 UTC it is already tomorrow in Beijing."""
    return now.astimezone(zone(tz)).date()


def default_period(now: dt.datetime, tz: str = "UTC", days: int = 90) -> tuple[str, str]:
    """The last `days` days of the hub's zone, today included: the operators' period when they name none."""
    today = local_day(now, tz)
    return (today - dt.timedelta(days=days)).isoformat(), today.isoformat()


def day_start(d: str, tz: str = "UTC") -> str:
    """The stored (UTC ISO) time at which day `d` of zone `tz` begins: a Beijing day starts at 16:00 UTC the day before."""
    day = dt.date.fromisoformat(d)
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone(tz)).astimezone(dt.UTC).isoformat()


def _bounds(conn: Connection, time_col: Any, id_col: Any, f: Filters) -> tuple[int | None, int | None]:
    """(lowest, highest) id inside the date range; ids grow with time, so each end is one seek in the time index."""
    lo = hi = None
    if f.date_from:
        lo = conn.execute(select(id_col).where(time_col >= day_start(f.date_from, f.tz)).order_by(time_col, id_col).limit(1)).scalar()
        if lo is None:
            return 1, 0  # nothing on or after the start
    if f.date_to:
        hi = conn.execute(
            select(id_col).where(time_col < day_start(_day_after(f.date_to), f.tz)).order_by(time_col.desc(), id_col.desc()).limit(1)
        ).scalar()
        if hi is None:
            return 1, 0
    return lo, hi


def receipt_page(engine: Engine, f: Filters, before: int | None = None, limit: int = PAGE) -> list[dict[str, Any]]:
    """Per-record receipts, newest first, `limit` from below id `before`."""
    r = receipts.c
    with engine.connect() as conn:
        lo, hi = _bounds(conn, r.hub_time, r.id, f)
        q = _receipt_where(_with_log_seq().order_by(r.id.desc()).limit(limit), f, lo, hi, before)
        return [dict(x) for x in conn.execute(q).mappings()]


def _with_log_seq() -> Any:
    """Receipt rows with their batch's receipt-log seq (rows name their batch; the log entry is the batch's),
    and for an accepted record the `op` its batch wrote ('upsert' or 'delete'), so a delete reads as one."""
    r, h = receipts.c, record_history.c
    written = (h.batch_id == r.batch_id) & (h.department == r.department) & (h.type == r.type) & (h.key == r.key) & (
        h.seq == r.seq
    )
    return (
        select(receipts, batches.c.log_seq, h.op)
        .join(batches, batches.c.batch_id == r.batch_id)
        .outerjoin(record_history, written)
    )


def _receipt_where(q: Any, f: Filters, lo: int | None, hi: int | None, before: int | None) -> Any:
    r = receipts.c
    if f.department:
        q = q.where(r.department == f.department)
    if f.status:
        q = q.where(r.status == f.status)
    if f.record_type:
        q = q.where(r.type == f.record_type)
    if f.key:
        q = q.where(r.key == f.key)
    if f.log_seq.isdigit():
        entry = receipt_log.c
        q = q.where(r.batch_id == select(entry.batch_id).where(entry.seq == int(f.log_seq), entry.kind == "batch").scalar_subquery())
    if lo is not None:
        q = q.where(r.id >= lo)
    if hi is not None:
        q = q.where(r.id <= hi)
    if before is not None:
        q = q.where(r.id < before)
    return q


def receipts_for_export(engine: Engine, f: Filters, limit: int = 1_000_000) -> Iterator[dict[str, Any]]:
    """All receipts matching the filters, newest first, streamed."""
    r = receipts.c
    with engine.connect() as conn:
        lo, hi = _bounds(conn, r.hub_time, r.id, f)
        q = _receipt_where(_with_log_seq().order_by(r.id.desc()).limit(limit), f, lo, hi, None)
        for row in conn.execution_options(stream_results=True, yield_per=2000).execute(q).mappings():
            yield dict(row)


def log_page(engine: Engine, f: Filters, before: int | None = None, limit: int = PAGE) -> list[dict[str, Any]]:
    """Receipt log entries (batches, refusals ...), newest first, keyset on seq."""
    lg = receipt_log.c
    with engine.connect() as conn:
        lo, hi = _bounds(conn, lg.time, lg.seq, f)
        q = select(receipt_log).order_by(lg.seq.desc()).limit(limit)
        if f.department:
            q = q.where(lg.department == f.department)
        if f.kind:
            q = q.where(lg.kind == f.kind)
        if f.status:
            q = q.where(lg.status == f.status)
        if f.key:  # a record key: the log entries of the batches that carried it
            batch_ids = select(receipts.c.batch_id).where(receipts.c.key == f.key)
            if f.department:
                batch_ids = batch_ids.where(receipts.c.department == f.department)
            q = q.where(lg.batch_id.in_(batch_ids))
        if lo is not None:
            q = q.where(lg.seq >= lo)
        if hi is not None:
            q = q.where(lg.seq <= hi)
        if before is not None:
            q = q.where(lg.seq < before)
        return [dict(x) for x in conn.execute(q).mappings()]


def department_names(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {c: n for c, n in conn.execute(select(departments.c.code, departments.c.name).order_by(departments.c.code))}


def period_receipts(conn: Connection, p_from: str, p_to: str, tz: str = "UTC") -> dict[str, tuple[int, int, int, int]]:
    """Per department (batches, receipts, rejected, accepted) in a period, from the batch entries' counts:
    one log entry per batch instead of one row per record, and the hash-chained log is the record of truth."""
    lg = receipt_log.c
    llo, lhi = _bounds(conn, lg.time, lg.seq, Filters(date_from=p_from, date_to=p_to, tz=tz))
    q = select(lg.department, lg.counts).where(lg.kind == "batch")
    if llo is not None:
        q = q.where(lg.seq >= llo)
    if lhi is not None:
        q = q.where(lg.seq <= lhi)
    out: dict[str, list[int]] = {}
    for dep, counts_text in conn.execution_options(yield_per=5000).execute(q):
        t = out.setdefault(dep or "", [0, 0, 0, 0])
        counts = orjson.loads(counts_text or "{}")
        t[0] += 1
        t[1] += sum(int(v) for v in counts.values())
        t[2] += int(counts.get("rejected", 0))
        t[3] += int(counts.get("accepted", 0))
    return {k: (a, b, c, d) for k, (a, b, c, d) in out.items()}


@dataclass
class FreshnessCounts:
    live: int = 0
    stale_by_type: dict[str, int] = field(default_factory=dict)
    expiring: dict[str, int] = field(default_factory=dict)


def freshness_scan(
    conn: Connection, days: Sequence[dt.date], freshness_days: Mapping[str, int],
    warn_days: Sequence[int] = DEFAULT_WARN_DAYS,
) -> dict[tuple[str, dt.date], FreshnessCounts]:
    """Per (department, day): live records, stale per type and expiring stock, in one pass over the records.

    A record counts on a day only if its current version had arrived by then (the hub keeps no
    older data), so for past days this is the state of the records that have not changed since.
    """
    r = records.c
    # The database groups records by the dates the rule reads (the date part of an ISO time is its own
    # date, as the rule takes it), so Python judges each distinct combination once, not each record.
    updated_day, received_day = func.substr(r.updated_at, 1, 10), func.substr(r.received_at, 1, 10)
    checked = case((r.type == "stock", r.data["checked_date"].as_string()), else_=None)
    expiry = case((r.type == "stock", r.data["expiry_date"].as_string()), else_=None)
    cols = (r.department.label("dep"), r.type.label("typ"), updated_day.label("upd"), received_day.label("rec"),
            checked.label("chk"), expiry.label("exp"))
    # Grouped by the output names: PostgreSQL would see the expressions' bound parameters as different expressions.
    q = select(*cols, func.count()).where(r.deleted.is_(False)).group_by(*(literal_column(c.name) for c in cols))
    out: dict[tuple[str, dt.date], FreshnessCounts] = {}
    ends = [(day, _day_after(day.isoformat())) for day in days]
    for dep, typ, upd, rec, chk, exp, n in conn.execution_options(stream_results=True, yield_per=5000).execute(q):
        last_update = parse_date(upd) or parse_date(rec)
        last_check, expiry_day = parse_date(chk), parse_date(exp)
        period = int(freshness_days.get(typ, DEFAULT_FRESHNESS_DAYS))
        for day, end in ends:
            if rec >= end:  # arrived after that day: not counted then
                continue
            c = out.setdefault((dep, day), FreshnessCounts())
            c.live += n
            v = assess(last_update, last_check, expiry_day, day, period, warn_days)
            if v.stale:
                c.stale_by_type[typ] = c.stale_by_type.get(typ, 0) + n
            bucket = v.expiry_bucket
            if bucket:
                c.expiring[bucket] = c.expiring.get(bucket, 0) + n
    return out


class Rates:
    """The two shares the status page and the 通报 grade by, for anything counting records and receipts."""

    records: int
    stale: int
    receipts: int
    rejected: int

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.receipts if self.receipts else 0.0

    @property
    def stale_share(self) -> float:
        return self.stale / self.records if self.records else 0.0


@dataclass
class DepartmentRow(Rates):
    code: str
    name: str
    by_type: dict[str, int] = field(default_factory=dict)
    records: int = 0
    updated: int = 0  # records whose current version arrived in the period
    stale: int = 0
    accepted: int = 0
    rejected: int = 0
    receipts: int = 0
    last_push: str | None = None
    pushes: int = 0  # batch log entries in the period
    verdict: str = ""
    stale_by_type: dict[str, int] = field(default_factory=dict)
    expiring: dict[str, int] = field(default_factory=dict)  # 'expired', '30', '90': as the gateway counts them

    @property
    def expired(self) -> int:
        return self.expiring.get("expired", 0)

    def expiring_within(self, days: int) -> int:
        """Stock expiring in 0..days days (not yet expired)."""
        return sum(n for k, n in self.expiring.items() if k != "expired" and int(k) <= days)


def department_status(
    engine: Engine,
    freshness_days: Mapping[str, int] | None = None,
    period: tuple[str, str] | None = None,
    now: dt.datetime | None = None,
    warn_days: Sequence[int] = DEFAULT_WARN_DAYS,
    scan: Mapping[tuple[str, dt.date], FreshnessCounts] | None = None,
    tz: str = "UTC",
) -> list[DepartmentRow]:
    """Per department: records by type, updated in period, stale, receipts and rejects in period, last push, 评价.

    `period` is (first day, last day) inclusive; default the last 90 days. Staleness and expiry are
    measured at the period's end (today for a period that has not ended), per record by
    gateway.standard.freshness: the same rule and the same numbers as the gateway's own freshness check.
    """
    now = now or dt.datetime.now(dt.UTC)
    period = period or default_period(now, tz)
    p_from, p_to = period
    # The period's days are days of the hub's zone: a Beijing day begins at 16:00 UTC the day before.
    at_from, at_end = day_start(p_from, tz), day_start(_day_after(p_to), tz)
    r = records.c
    rows = {c: DepartmentRow(c, n) for c, n in department_names(engine).items()}

    def row(code: str | None) -> DepartmentRow:
        code = code or ""
        if code not in rows:
            rows[code] = DepartmentRow(code, code)
        return rows[code]

    with engine.connect() as conn:
        live = r.deleted.is_(False)
        # One pass over the covering index: counts and updated in period.
        q = select(
            r.department, r.type, func.count(),
            func.sum(case((and_(r.received_at >= at_from, r.received_at < at_end), 1), else_=0)),
        ).where(live).group_by(r.department, r.type)
        for dep, typ, n, updated in conn.execute(q):
            d = row(dep)
            d.by_type[typ] = n
            d.records += n
            d.updated += int(updated or 0)
        # Staleness and expiry record by record, by the rule the gateway applies to the same data.
        today = min(local_day(now, tz), dt.date.fromisoformat(p_to))
        if scan is None:  # a caller that scanned several days at once (the 通报's trend) passes its scan
            scan = freshness_scan(conn, [today], freshness_days or {}, warn_days)
        for (dep, day), counts in scan.items():
            if day != today:
                continue
            d = row(dep)
            d.stale_by_type = counts.stale_by_type
            d.stale = sum(counts.stale_by_type.values())
            d.expiring = counts.expiring
        # Last push: per department one seek in the (department, kind, seq) index.
        inner = receipt_log.alias("inner_log")
        last_seq = (
            select(func.max(inner.c.seq)).where(inner.c.department == departments.c.code, inner.c.kind == "batch")
            .correlate(departments).scalar_subquery()
        )
        for dep, t in conn.execute(
            select(departments.c.code, receipt_log.c.time)
            .select_from(departments.join(receipt_log, receipt_log.c.seq == last_seq))
        ):
            row(dep).last_push = t
        for dep, (pushes, receipts_n, rejected, accepted) in period_receipts(conn, p_from, p_to, tz).items():
            d = row(dep)
            d.pushes, d.receipts, d.rejected, d.accepted = pushes, receipts_n, rejected, accepted
    for d in rows.values():
        d.verdict = MISSING if d.pushes == 0 else LATE if d.stale else ON_TIME
    return sorted(rows.values(), key=lambda d: d.code)
