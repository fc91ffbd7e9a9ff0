"""Times as a person reads them: stored times stay UTC (ISO 8601); pages and reports show them in the
configured zone (Asia/Shanghai, Beijing time, by default)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Shanghai"


@lru_cache(maxsize=16)
def zone(name: str = DEFAULT_TIMEZONE) -> ZoneInfo:
    return ZoneInfo(name)


def today(tz: str = DEFAULT_TIMEZONE) -> dt.date:
    """The calendar day in China now: the standard's dates are Beijing days, and a server kept on UTC would
    otherwise refuse a date entered between 00:00 and 08:00 Beijing time as a future one."""
    return dt.datetime.now(zone(tz)).date()


def zone_problem(name: object) -> str | None:
    """Why `name` is not a usable time zone, or None (for config checks)."""
    if not isinstance(name, str) or not name:
        return "expected an IANA time zone name such as Asia/Shanghai"
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}; expected an IANA name such as Asia/Shanghai"
    return None


def to_local(value: str | dt.datetime | None, tz: str = DEFAULT_TIMEZONE) -> dt.datetime | None:
    """A stored time in the zone `tz` (aware); a naive stored time is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        t = value
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(zone(tz))


def local_text(value: str | dt.datetime | None, tz: str = DEFAULT_TIMEZONE, seconds: bool = True) -> str:
    """'2026-03-01 16:05:09' in zone `tz`; text that is not a time is returned unchanged."""
    t = to_local(value, tz)
    if t is None:
        return "" if value is None else str(value)
    return t.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def zone_label(tz: str = DEFAULT_TIMEZONE) -> str:
    """How a page names the zone its times are in."""
    return "北京时间" if tz in ("Asia/Shanghai", "Asia/Chongqing", "PRC") else tz
