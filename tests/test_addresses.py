"""The address rule (aggregator/addresses.py): a table of addresses and allowances."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from aggregator.addresses import NEVER_ALLOWED, PRIVATE_NETWORKS, parse_network, refusal

LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
EVERYTHING = (ip_network("0.0.0.0/0"), ip_network("::/0"))


@pytest.mark.parametrize(
    ("address", "allowed", "verdict"),
    [
        pytest.param("8.8.8.8", (), None, id="public"),
        pytest.param("2001:4860:4860::8888", (), None, id="public IPv6"),
        pytest.param("::ffff:8.8.8.8", (), None, id="public IPv4-mapped"),
        pytest.param("127.0.0.1", (), "not a public", id="loopback by default"),
        pytest.param("127.8.9.10", LOOPBACK, None, id="loopback allowed"),
        pytest.param("::1", LOOPBACK, None, id="IPv6 loopback allowed"),
        pytest.param("::ffff:127.0.0.1", (), "not a public", id="IPv4-mapped loopback"),
        pytest.param("::ffff:127.0.0.1", LOOPBACK, None, id="IPv4-mapped loopback allowed"),
        pytest.param("10.1.2.3", (), "not a public", id="RFC 1918"),
        pytest.param("10.1.2.3", LOOPBACK, "not a public", id="RFC 1918, loopback allowed"),
        pytest.param("10.1.2.3", (ip_network("10.1.2.3/32"),), None, id="one address allowed"),
        pytest.param("172.16.0.1", (), "not a public", id="172.16/12"),
        pytest.param("192.168.1.1", PRIVATE_NETWORKS, None, id="192.168/16 as private"),
        pytest.param("100.64.0.1", (), "not a public", id="carrier-grade NAT"),
        pytest.param("fd12::1", (), "not a public", id="unique local"),
        pytest.param("0.0.0.0", (), "not a public", id="unspecified"),
        pytest.param("224.0.0.1", (), "not a public", id="multicast"),
        pytest.param("169.254.169.254", (), "never", id="metadata"),
        pytest.param("169.254.169.254", EVERYTHING, "never", id="metadata, everything allowed"),
        pytest.param("169.254.0.23", EVERYTHING, "never", id="link-local (Tencent metadata)"),
        pytest.param("::ffff:169.254.169.254", EVERYTHING, "never", id="metadata IPv4-mapped"),
        pytest.param("64:ff9b::a9fe:a9fe", EVERYTHING, "never", id="metadata through NAT64"),
        pytest.param("64:ff9b::808:808", (), None, id="public through NAT64"),
        pytest.param("fe80::1", EVERYTHING, "never", id="IPv6 link-local"),
        pytest.param("fd00:ec2::254", EVERYTHING, "never", id="AWS IPv6 metadata"),
        pytest.param("100.100.100.200", EVERYTHING, "never", id="Alibaba metadata"),
        pytest.param("192.0.0.192", EVERYTHING, "never", id="Oracle metadata"),
        pytest.param("168.63.129.16", EVERYTHING, "never", id="Azure platform endpoint"),
    ],
)
def test_refusal(address: str, allowed: tuple[object, ...], verdict: str | None) -> None:
    why = refusal(ip_address(address), allowed)  # type: ignore[arg-type]
    if verdict is None:
        assert why is None
    else:
        assert why is not None
        assert verdict in why


@pytest.mark.parametrize(
    ("text", "network"),
    [
        pytest.param("127.0.0.0/8", "127.0.0.0/8", id="IPv4 CIDR"),
        pytest.param("::1/128", "::1/128", id="IPv6 CIDR"),
        pytest.param("10.1.2.3", "10.1.2.3/32", id="one IPv4 address"),
        pytest.param(" ::1 ", "::1/128", id="one IPv6 address, spaces"),
        pytest.param("0.0.0.0/0", "0.0.0.0/0", id="everything (link-local still refused)"),
    ],
)
def test_parse_network(text: str, network: str) -> None:
    assert parse_network(text) == ip_network(network)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(
            "10.0.0.1/8", r"host bits set \(did you mean 10\.0\.0\.0/8\?\)", id="host bits"
        ),
        pytest.param("example.com", "bad network", id="a name"),
        pytest.param(8, "bad network", id="a number"),
        pytest.param("169.254.169.254", "cannot be allowed", id="metadata"),
        pytest.param("169.254.0.0/16", "cannot be allowed", id="link-local"),
        pytest.param("fe80::/64", "cannot be allowed", id="IPv6 link-local"),
        pytest.param("100.100.100.200/32", "cannot be allowed", id="Alibaba metadata"),
    ],
)
def test_parse_network_refuses(value: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_network(value)


@pytest.mark.parametrize("never", NEVER_ALLOWED, ids=str)
def test_what_is_never_allowed_stays_refused_with_every_private_network(never: object) -> None:
    """The deprecated allow_private_networks: true reads as PRIVATE_NETWORKS, and
    carrier-grade NAT there holds Alibaba's metadata address: that one stays refused."""
    why = refusal(never.network_address, PRIVATE_NETWORKS)  # type: ignore[attr-defined]
    assert why is not None
    assert "never" in why
