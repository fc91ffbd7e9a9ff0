"""The standard's freshness rule for one record, shared by the gateway and the hub.

The gateway applies it to its own store (gateway.freshness), the hub to the
records it holds (gateway.hub.ui.stats), so both sides give the same numbers
for the same data. Pure functions on dates: no database, no config.

- A record's *last update* is the source's ``updated_at`` when it has one,
  else when the changed version was sent (the gateway's enqueue time, the
  hub's arrival time).
- A stock record's *last check* is its 核查日期 (checked_date). For stock the
  standard measures staleness from the last physical check: a quantity retyped
  without counting the goods does not make it fresh.
- A record is stale when its reference date (last check, else last update)
  is more than its period (90 days by default, "at least quarterly") old; a
  record with no date at all is stale.
- Stock whose 有效期 (expiry_date) is within the largest warning window is
  expiring; it is counted in the smallest window it falls in ("expired" once
  past).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_PERIOD_DAYS = 90
DEFAULT_WARN_DAYS = (30, 90)


@dataclass(frozen=True)
class Verdict:
    reference: dt.date | None  # the last check (stock) or the last update
    days_since: int
    stale: bool
    expiry: dt.date | None = None
    days_left: int | None = None  # negative: already expired
    warn_days: int | None = None  # the smallest warning window it falls in; None: not expiring

    @property
    def expiry_bucket(self) -> str | None:
        """'expired', or the warning window as text ('30', '90'), or None."""
        if self.warn_days is None or self.days_left is None:
            return None
        return "expired" if self.days_left < 0 else str(self.warn_days)


def parse_time(text: object) -> dt.datetime | None:
    """An ISO time or date as an aware datetime; a naive one is taken as UTC."""
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        try:
            d = dt.date.fromisoformat(str(text)[:10])
        except ValueError:
            return None
        t = dt.datetime(d.year, d.month, d.day)
    # A few hours of zone do not change a 90-day verdict.
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def parse_date(value: object) -> dt.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def assess(
    last_update: dt.date | None,
    last_check: dt.date | None,
    expiry: dt.date | None,
    today: dt.date,
    period_days: int = DEFAULT_PERIOD_DAYS,
    warn_days: Sequence[int] = DEFAULT_WARN_DAYS,
) -> Verdict:
    """The verdict on one record at `today` (the local day). `last_update`: a datetime (its own date counts) or a
    date. Pass last_check and expiry for stock only."""
    if isinstance(last_update, dt.datetime):
        last_update = last_update.date()
    ref = last_check or last_update
    days_since = (today - ref).days if ref else period_days + 1
    windows = sorted(int(d) for d in warn_days) or [30]
    left = warn = None
    if expiry is not None:
        left = (expiry - today).days
        if left <= windows[-1]:
            warn = next((w for w in windows if left <= w), windows[-1])
    return Verdict(ref, days_since, days_since > period_days, expiry, left, warn)
