"""Retry timing: exponential backoff with full jitter, and the hub's Retry-After.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the
retries of many gateways after a hub outage instead of having them all come
back at the same second.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random

# After a 401/403 (key not registered, revoked, clock far off) nothing changes
# until a person acts; retrying sooner would only fill the hub's logs.
REFUSED_BACKOFF = 900.0


class Backoff:
    """Delays for consecutive failures: uniform(0, min(cap, base * 2**n)), Retry-After honoured."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.failures, 30)))
        self.failures += 1
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            # The hub knows its own load better than our guess; but a hub asking
            # for a day's pause should not park the outbox that long.
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def reset(self) -> None:
        self.failures = 0


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())
