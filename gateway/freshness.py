"""Freshness: records not updated or checked within their period, and stock near expiry.

The rule for one record is gateway.standard.freshness (the hub applies the same one).

Computed from the gateway's own store, so it works for every source type:

- a record's *last update* is the source's ``updated_at`` when the source has
  one, else the time the gateway last enqueued a changed version of it (a new
  version means the data changed);
- a stock record's *last check* is its 核查日期 (checked_date), the last
  physical check, from the latest data the gateway enqueued for it.

A record is stale when its reference date is older than
``config.freshness_days[record_type]`` days (the standard: at least
quarterly, 90 days by default). The reference is the last update, except for
stock, where the standard measures staleness from the last physical check: a
quantity retyped without counting the goods does not make it fresh.
``fingerprints.checked_at`` is *not* a check either: it is when a sync last saw
the row, which every scheduled cycle refreshes, so it would call every record fresh.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine, select

from gateway.localtime import DEFAULT_TIMEZONE, zone
from gateway.logs import log
from gateway.standard.freshness import assess, parse_date, parse_time
from gateway.store.tables import fingerprints, outbox

LOG = logging.getLogger("gateway.freshness")


@dataclass(frozen=True)
class StaleRecord:
    record_type: str
    record_key: str
    source: str
    last_update: dt.datetime | None
    last_check: dt.date | None
    period_days: int
    days_since: int  # days since the last check (stock) or the last update (other types)

    @property
    def message(self) -> str:
        what = "核查" if self.last_check else "更新"
        return f"超过 {self.period_days} 天未{what}（已 {self.days_since} 天）"


@dataclass(frozen=True)
class ExpiringStock:
    record_key: str
    source: str
    material_id: str
    depot_id: str
    batch_no: str
    expiry_date: dt.date
    days_left: int  # negative: already expired
    warn_days: int  # the smallest warning window it falls in

    @property
    def message(self) -> str:
        if self.days_left < 0:
            return f"已过期 {-self.days_left} 天（有效期至 {self.expiry_date.isoformat()}）"
        return f"{self.days_left} 天后到期（有效期至 {self.expiry_date.isoformat()}）"


@dataclass
class FreshnessReport:
    as_of: dt.datetime
    stale: list[StaleRecord] = field(default_factory=list)
    expiring: list[ExpiringStock] = field(default_factory=list)
    records: int = 0  # live records considered

    def stale_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.stale:
            out[r.record_type] = out.get(r.record_type, 0) + 1
        return out

    def expiring_counts(self) -> dict[str, int]:
        """Stock near expiry per warning window ('expired', '30', '90' ...)."""
        out: dict[str, int] = {}
        for s in self.expiring:
            k = "expired" if s.days_left < 0 else str(s.warn_days)
            out[k] = out.get(k, 0) + 1
        return out


def _live_records(engine: Engine, record_type: str | None = None) -> Iterator[tuple]:
    """(record_type, record_key, source, fp.updated_at, latest enqueued_at, latest data) of live records."""
    q = (
        select(
            fingerprints.c.record_type,
            fingerprints.c.record_key,
            fingerprints.c.source,
            fingerprints.c.updated_at,
            outbox.c.enqueued_at,
            outbox.c.data,
        )
        # The record's latest outbox row is the one its fingerprint names.
        .select_from(fingerprints.join(outbox, outbox.c.id == fingerprints.c.outbox_id))
        .where(fingerprints.c.deleted == 0)
    )
    if record_type:
        q = q.where(fingerprints.c.record_type == record_type)
    with engine.connect() as conn:
        # Stream: the store may hold hundreds of thousands of records.
        yield from conn.execution_options(stream_results=True, yield_per=2000).execute(q)


def freshness_report(
    engine: Engine,
    freshness_days: Mapping[str, int],
    expiry_warn_days: Sequence[int] = (30, 90),
    now: dt.datetime | None = None,
    tz: str = DEFAULT_TIMEZONE,
) -> FreshnessReport:
    """Stale records (per-type period) and stock expiring within the largest warning window, counted in
    days of `tz` (the standard's dates are local days: a UTC day would count one day short every evening
    after 16:00 UTC in China)."""
    now = now or dt.datetime.now(dt.UTC)
    local = zone(tz)
    today = now.astimezone(local).date()
    report = FreshnessReport(as_of=now)
    for rtype, rkey, source, fp_updated, enqueued_at, data_text in _live_records(engine):
        report.records += 1
        data = orjson.loads(data_text) if rtype == "stock" and data_text else None
        last_update = parse_time(fp_updated) or parse_time(enqueued_at)
        if isinstance(last_update, dt.datetime) and last_update.tzinfo is not None:
            last_update = last_update.astimezone(local)
        last_check = parse_date(data.get("checked_date")) if data else None
        expiry = parse_date(data.get("expiry_date")) if data else None
        period = int(freshness_days.get(rtype, 90))
        v = assess(last_update, last_check, expiry, today, period, expiry_warn_days)
        if v.stale:
            report.stale.append(StaleRecord(rtype, rkey, source, last_update, last_check, period, v.days_since))
        if data and v.warn_days is not None and v.expiry is not None and v.days_left is not None:
            report.expiring.append(
                ExpiringStock(
                    rkey, source, str(data.get("material_id") or ""), str(data.get("depot_id") or ""),
                    str(data.get("batch_no") or ""), v.expiry, v.days_left, v.warn_days,
                )
            )
    report.stale.sort(key=lambda r: (-r.days_since, r.record_type, r.record_key))
    report.expiring.sort(key=lambda s: (s.days_left, s.record_key))
    return report


def report_for(config, engine: Engine, now: dt.datetime | None = None) -> FreshnessReport:  # type: ignore[no-untyped-def]
    """freshness_report with the periods and warning windows of a GatewayConfig."""
    return freshness_report(engine, config.freshness_days, config.expiry_warn_days, now, config.web.timezone)


def log_freshness(config, engine: Engine, now: dt.datetime | None = None) -> FreshnessReport:  # type: ignore[no-untyped-def]
    """The scheduled freshness job: one summary line plus one line per finding (first 200 of each)."""
    rep = report_for(config, engine, now)
    log(
        LOG, logging.INFO if not (rep.stale or rep.expiring) else logging.WARNING, "freshness check",
        records=rep.records, stale=len(rep.stale), stale_by_type=rep.stale_counts(),
        expiring=len(rep.expiring), expiring_by_window=rep.expiring_counts(),
    )
    for r in rep.stale[:200]:
        log(LOG, logging.INFO, "stale record", record_type=r.record_type, key=r.record_key, source=r.source,
            days_since=r.days_since, period_days=r.period_days, message=r.message)
    for s in rep.expiring[:200]:
        log(LOG, logging.INFO, "stock near expiry", key=s.record_key, source=s.source,
            expiry_date=s.expiry_date.isoformat(), days_left=s.days_left, message=s.message)
    return rep
