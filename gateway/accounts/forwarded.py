"""The client address of a request, honouring X-Forwarded-For only from configured trusted proxies.

Rule: when the peer (REMOTE_ADDR) is in `trusted_proxies`, walk X-Forwarded-For
from the right and take the first address that is not itself a trusted proxy
(the right-most untrusted entry: what the nearest trusted proxy saw). Entries to
its left were written by the client and are never used. From any other peer
the header is ignored, so a client cannot choose its own address.

werkzeug's ProxyFix does not fit: it trusts a fixed number of hops from any peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From addresses or CIDR networks ("127.0.0.1", "10.0.0.0/8"); ValueError names a bad entry."""
        nets: list[Network] = []
        for e in entries:
            try:
                nets.append(ipaddress.ip_network(str(e).strip(), strict=False))
            except ValueError:
                raise ValueError(f"{e!r} is not an IP address or network") from None
        return cls(tuple(nets))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, addr: str | None) -> bool:
        ip = _ip(addr)
        return ip is not None and any(ip in n for n in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> tuple[str | None, str | None]:
        """(the client's address, the proxy it came through or None when not forwarded)."""
        if not forwarded_for or not self.trusts(peer):
            return peer, None
        hops = [h.strip() for h in forwarded_for.split(",")]
        last = peer
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                # Not an address where a trusted proxy writes one: do not guess, use the nearest known hop.
                return last, peer
            if not self.trusts(hop):
                return str(ip), peer
            last = str(ip)
        return last, peer  # every hop is a trusted proxy: the farthest one is the client


def _ip(addr: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not addr:
        return None
    a = addr.strip()
    if a.startswith("[") and "]" in a:  # "[v6]" or "[v6]:port"
        a = a[1 : a.index("]")]
    elif a.count(":") == 1:  # "v4:port"
        a = a.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip
