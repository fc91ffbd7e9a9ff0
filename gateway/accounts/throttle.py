"""Login throttling that one attacker cannot turn into a lock-out of other people (ASVS V2.2).

Failed logins are counted, in memory, three ways:

- per (account, address): after `free_failures` failures the next attempt from
  that address on that account must wait `base_delay` seconds, doubling with
  every further failure up to `max_delay`. Only that pair is slowed: the same
  account from another address, and other accounts from this address, are not.
- per address (any account): past `address_limit` failures in the window the
  address may only try accounts that have logged in from it before.
- per account (any address): past `account_limit` failures in an hour the
  account accepts attempts only from addresses it has logged in from before.

One address cannot reach the per-account limit: its pair delay allows about 40
attempts an hour. So a single attacker slows only itself, and the owner of the
account still logs in from an address that is not failing. IPv6 addresses count
per /64, which one host usually has whole.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 20_000  # counters kept per kind; past this the stalest are dropped (bounded memory)
ACCOUNT_WINDOW = 3600.0  # ASVS V2.2.1: at most ~100 failed attempts per account per hour


@dataclass(frozen=True)
class Refusal:
    rule: str  # pair | address | account
    retry_after: int  # seconds

    @property
    def message(self) -> str:
        wait = wait_text(self.retry_after)
        if self.rule == "pair":
            return f"该账户从此地址登录失败次数过多，请 {wait}后再试"
        if self.rule == "address":
            return f"此地址登录失败次数过多，请 {wait}后再试"
        return f"该账户近期登录失败次数过多，暂不接受来自新地址的登录，请 {wait}后再试或联系管理员"


def wait_text(seconds: int) -> str:
    return f"{seconds} 秒" if seconds < 120 else f"{math.ceil(seconds / 60)} 分钟"


def address_key(addr: str) -> str:
    """The address failures are counted under: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Counter:
    """Failure times per key within a sliding window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.times: dict[object, deque[float]] = {}

    def recent(self, key: object, now: float) -> deque[float]:
        q = self.times.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self.times[key]
        return q

    def add(self, key: object, now: float) -> None:
        self.times.setdefault(key, deque()).append(now)
        if len(self.times) > MAX_KEYS:
            self._prune(now)

    def clear(self, match: Callable[[object], bool]) -> None:
        for k in [k for k in self.times if match(k)]:
            del self.times[k]

    def _prune(self, now: float) -> None:
        for k in list(self.times):
            self.recent(k, now)
        if len(self.times) > MAX_KEYS:  # a flood of distinct keys: forget the stalest half
            for k in sorted(self.times, key=lambda k: self.times[k][-1])[: len(self.times) // 2]:
                del self.times[k]


class LoginThrottle:
    def __init__(
        self,
        free_failures: int = 5,
        window: float = 900.0,
        base_delay: float = 30.0,
        address_limit: int = 30,
        account_limit: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures, self.base_delay = free_failures, base_delay
        self.max_delay = window
        self.address_limit, self.account_limit = address_limit, account_limit
        self.clock = clock  # a seam for tests that need time to pass
        self._pairs, self._addresses = _Counter(window), _Counter(window)
        self._accounts = _Counter(ACCOUNT_WINDOW)
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        if failures < self.free_failures:
            return 0.0
        return min(self.base_delay * 2 ** (failures - self.free_failures), self.max_delay)

    def check(self, account: str, addr: str, known: Callable[[], bool]) -> Refusal | None:
        """Why this attempt is refused now, or None. `known()`: has the account logged in from this address?"""
        key = address_key(addr)
        now = self.clock()
        with self._lock:
            pair = self._pairs.recent((account, key), now)
            if pair and (wait := pair[-1] + self.delay(len(pair)) - now) > 0:
                return Refusal("pair", math.ceil(wait))
            by_address = self._addresses.recent(key, now)
            by_account = self._accounts.recent(account, now)
            over_address = len(by_address) >= self.address_limit
            over_account = len(by_account) >= self.account_limit
            if not (over_address or over_account):
                return None
            address_wait = by_address[0] + self._addresses.window - now if over_address else 0.0
            account_wait = by_account[0] + self._accounts.window - now if over_account else 0.0
        # Outside the lock: may read the audit log once per account.
        if known():
            return None
        if over_address:
            return Refusal("address", max(1, math.ceil(address_wait)))
        return Refusal("account", max(1, math.ceil(account_wait)))

    def fail(self, account: str, addr: str) -> None:
        key = address_key(addr)
        now = self.clock()
        with self._lock:
            self._pairs.add((account, key), now)
            self._addresses.add(key, now)
            self._accounts.add(account, now)

    def succeed(self, account: str, addr: str) -> None:
        """The password was right from here: this pair starts afresh (other counters stay)."""
        key = (account, address_key(addr))
        with self._lock:
            self._pairs.times.pop(key, None)

    def reset(self, account: str) -> None:
        """An administrator's unlock: every delay on this account ends (in this process)."""
        with self._lock:
            self._pairs.clear(lambda k: isinstance(k, tuple) and k[0] == account)
            self._accounts.clear(lambda k: k == account)
