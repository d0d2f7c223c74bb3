"""What one client address is for every per-address limit: loopback is one address, IPv6 a /64."""

from __future__ import annotations

import ipaddress

from dbhandles.byte_cache import NAME_CACHE_BYTES, byte_memo

__all__ = ["LOOPBACK", "address_key"]

#: The key of every loopback address (``127.0.0.0/8``, ``::1``, ``::ffff:127.x.y.z``).
LOOPBACK = "loopback"


@byte_memo(NAME_CACHE_BYTES)
def address_key(host: str) -> str:
    """The address ``host`` (a peer's IP address as the socket gives it) counts as, for every
    per-address limit (connections, requests in progress, the public rate, the worker threads'
    turns): ``LOOPBACK`` for any loopback address, since any local process can bind all of
    ``127.0.0.0/8`` (rotating ``127.0.w.k`` multiplied a flood's share by thousands); an IPv6
    address's ``/64`` (``"2001:db8:1:2::/64"``: one host is given a whole /64 and may use any of it);
    an IPv4-mapped IPv6 address as the IPv4 address it maps; an IPv4 address as itself. Anything else
    (``"unknown"``, a Unix socket's path) is its own key.

    Cached (in bytes: a peer may rotate through its /64): it runs for every request.
    """
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])  # a link-local address's zone is dropped
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.is_loopback:
            return LOOPBACK
        else:
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return LOOPBACK if ip.is_loopback else str(ip)
