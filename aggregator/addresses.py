"""Which addresses a fetch may connect to: pure rules over ``ipaddress`` values, no I/O.

    link-local or a cloud metadata address     never, even inside an allowed network
    inside a network of ``allow_networks``     yes
    globally routable unicast                  yes
    anything else                              no: loopback, private, carrier-grade NAT,
                                               reserved, multicast, unspecified

A feed URL, or a redirect a feed server answers with, must not reach what sits beside
the service: the cloud metadata service (instance credentials at 169.254.169.254), a
database port on 127.0.0.1, an admin page on the office network. Ops name the private
networks their sources live on (``allow_networks``, globally and per source); the
metadata addresses cannot be named at all. The fetcher applies ``refusal`` to the
address each socket actually connected to (fetcher.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Refused whatever the config says. The metadata services of AWS, GCP, Azure, Oracle,
# DigitalOcean, Tencent and Huawei answer at 169.254.169.254 or elsewhere in IPv4
# link-local; the others are listed one by one.
NEVER_ALLOWED: tuple[Network, ...] = (
    ip_network("169.254.0.0/16"),  # IPv4 link-local (RFC 3927)
    ip_network("fe80::/10"),  # IPv6 link-local (RFC 4291)
    ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ip_network("192.0.0.192/32"),  # Oracle Cloud metadata (the older address)
    ip_network("168.63.129.16/32"),  # Azure's platform endpoint (WireServer)
)

# What the deprecated ``allow_private_networks: true`` allowed, less link-local and the
# metadata addresses, which nothing allows any more.
PRIVATE_NETWORKS: tuple[Network, ...] = (
    ip_network("127.0.0.0/8"),  # loopback
    ip_network("::1/128"),
    ip_network("10.0.0.0/8"),  # RFC 1918
    ip_network("172.16.0.0/12"),
    ip_network("192.168.0.0/16"),
    ip_network("fc00::/7"),  # IPv6 unique local (RFC 4193)
    ip_network("100.64.0.0/10"),  # carrier-grade NAT (RFC 6598)
)

_NAT64 = ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits


def unwrap(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, or NAT64's well-known
    prefix), else the address itself: ``::ffff:169.254.169.254`` is the metadata service."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_never_allowed(network: Network) -> bool:
    """Whether ``network`` lies wholly inside link-local or a metadata address."""
    return any(
        network.version == never.version and network.subnet_of(never)  # type: ignore[arg-type]
        for never in NEVER_ALLOWED
    )


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why a connection to ``address`` is refused, or None when it may go ahead."""
    target = unwrap(address)
    if any(target in never for never in NEVER_ALLOWED):
        return f"{address} is link-local or a cloud metadata address, which is never allowed"
    if any(target in network for network in allowed):
        return None
    if target.is_global and not target.is_multicast:
        return None
    return f"{address} is not a public address, and no allow_networks entry covers it"


def parse_network(value: object) -> Network:
    """A configured network: CIDR (``10.0.0.0/8``, ``::1/128``) or one address
    (``10.1.2.3``). Raises ValueError with a one-line reason."""
    if not isinstance(value, str):
        raise ValueError(f"bad network {value!r} (write one such as 10.0.0.0/8 or ::1/128)")
    text = value.strip()
    try:
        network = ip_network(text)
    except ValueError as e:
        try:
            meant = ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"bad network {value!r} (write one such as 10.0.0.0/8 or ::1/128)"
            ) from e
        raise ValueError(f"bad network {value!r}: host bits set (did you mean {meant}?)") from e
    if is_never_allowed(network):
        raise ValueError(
            f"{network} is link-local or a cloud metadata address, which cannot be "
            "allowed (a redirect there is how a feed URL reads cloud credentials)"
        )
    return network


def address_of(text: str) -> Address | None:
    """``text`` as an IP address (a URL's host, with or without brackets), else None."""
    try:
        return ip_address(text.strip("[]"))
    except ValueError:
        return None
