"""Netlink primitives (pyroute2) for namespaces, veths, addresses, routes and neighbours.

Every call raises on failure (pyroute2's NetlinkError carries errno and message); callers add
context. Names come from the address plan, which validates them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.rtnl.tcmsg import plugins as _tc_plugins

from fabriccore.commands import netns_argv
from fabriccore.naming import check_ifname

# pyroute2 ships no "bfifo" plugin and then forces the parent to the root; bfifo's options are
# pfifo's (one u32 limit, read as bytes by the kernel), so reuse that encoder.
_tc_plugins.setdefault("bfifo", _tc_plugins["pfifo"])

NUD_PERMANENT = 0x80


def create_namespace(name: str) -> None:
    netns.create(name)


def delete_namespace(name: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        netns.remove(name)


def list_namespaces() -> list[str]:
    return list(netns.listnetns())


@contextlib.contextmanager
def namespace(name: str | None) -> Iterator[IPRoute]:
    """A netlink socket in the named namespace (None: the root namespace)."""
    handle = IPRoute() if name is None else NetNS(name)
    try:
        yield handle
    finally:
        handle.close()


def create_veth(name_a: str, name_b: str) -> None:
    """A veth pair in the root namespace (moved into namespaces afterwards)."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=check_ifname(name_a), kind="veth",
                 peer={"ifname": check_ifname(name_b)})


def delete_root_interfaces(names: list[str]) -> None:
    """Delete these root-namespace interfaces if they exist (a veth takes its peer along)."""
    with IPRoute() as ipr:
        for name in names:
            found = ipr.link_lookup(ifname=name)
            if found:
                with contextlib.suppress(Exception):
                    ipr.link("del", index=found[0])


def link_index(handle: IPRoute, ifname: str) -> int:
    found = handle.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname!r}")
    return found[0]


def configure_interface(handle: IPRoute, ifname: str, *, mac: str | None, mtu: int,
                        address: str | None) -> int:
    index = link_index(handle, ifname)
    attrs = {"mtu": mtu}
    if mac:
        attrs["address"] = mac
    handle.link("set", index=index, **attrs)
    if address:
        ip, prefix = address.split("/")
        handle.addr("add", index=index, address=ip, prefixlen=int(prefix))
    handle.link("set", index=index, state="up")
    return index


def bring_up_loopback(handle: IPRoute) -> None:
    handle.link("set", index=link_index(handle, "lo"), state="up")


def add_route(handle: IPRoute, dst: str, gateways: list[str]) -> None:
    """A route to dst via one gateway, or an equal-cost multipath route via several."""
    if len(gateways) == 1:
        handle.route("add", dst=dst, gateway=gateways[0])
    else:
        handle.route("add", dst=dst, multipath=[{"gateway": gw} for gw in gateways])


def add_static_neighbor(handle: IPRoute, ifname: str, ip: str, mac: str) -> None:
    handle.neigh("add", dst=ip, lladdr=mac, ifindex=link_index(handle, ifname),
                 state=NUD_PERMANENT)


def sysctl_argv(ns: str, values: dict[str, str | int]) -> list[str]:
    """sysctl writes inside a namespace (/proc/sys/net is per-namespace and read at open)."""
    return netns_argv(ns, ["sysctl", "-q", "-w", *[f"{k}={v}" for k, v in values.items()]])


def offload_argv(ifname: str, *, tx_checksum: bool) -> list[str]:
    """Segmentation offloads off, so that queues hold MTU-sized packets and byte-limited
    buffers mean what they say; tx checksum offload off too for userspace OVS, where TCP
    otherwise stalls on bad checksums."""
    features = ["tso", "off", "gso", "off", "gro", "off"]
    if tx_checksum:
        features += ["tx", "off"]
    return ["ethtool", "-K", ifname, *features]


def interface_counters(handle: IPRoute, ifname: str) -> dict[str, int]:
    (link,) = handle.get_links(link_index(handle, ifname))
    stats = link.get_attr("IFLA_STATS64")
    return {key: int(stats[key]) for key in ("rx_bytes", "tx_bytes", "rx_packets",
                                              "tx_packets", "rx_dropped", "tx_dropped")}
