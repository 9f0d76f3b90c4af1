"""Netlink primitives (pyroute2) for namespaces, veths, addresses, routes and neighbours, and
the segmentation offloads (ethtool's ioctl).

Every call raises on failure (pyroute2's NetlinkError carries errno and message); callers add
context. Names come from the address plan, which validates them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import socket
import struct
from collections.abc import Iterator

from pyroute2 import IPRoute, netns
from pyroute2.netlink.rtnl.tcmsg import plugins as _tc_plugins

from fabriccore.naming import check_ifname
from fabriccore.netns import in_namespace

# pyroute2 ships no "bfifo" plugin and then forces the parent to the root; bfifo's options are
# pfifo's (one u32 limit, read as bytes by the kernel), so reuse that encoder.
_tc_plugins.setdefault("bfifo", _tc_plugins["pfifo"])

NUD_PERMANENT = 0x80


def delete_namespace(name: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        netns.remove(name)


def list_namespaces() -> list[str]:
    return list(netns.listnetns())


@contextlib.contextmanager
def namespace(name: str | None) -> Iterator[IPRoute]:
    """A netlink socket in the named namespace (None: the root namespace). The socket is
    opened with this thread in the namespace and stays bound there: no helper process, as
    pyroute2's NetNS would fork for each."""
    with in_namespace(name):
        handle = IPRoute()
    try:
        yield handle
    finally:
        handle.close()


def create_veth(handle: IPRoute, a: dict, b: dict) -> None:
    """A veth pair whose ends are created where they belong, each end a dict of ``ifname``,
    ``mtu``, optional ``address`` (MAC) and ``netns`` (a namespace name; absent or None: the
    handle's namespace). Created in place, an end is never moved: moving a device between
    namespaces costs the kernel a grace period (about 18 ms a move here), which was most of
    a large fabric's link phase."""
    def attrs(end: dict) -> dict:
        out = {"ifname": check_ifname(end["ifname"]), "mtu": end["mtu"]}
        if end.get("address"):
            out["address"] = end["address"]
        if end.get("netns"):
            out["net_ns_fd"] = end["netns"]
        return out

    handle.link("add", kind="veth", **attrs(a), peer=attrs(b))


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


def configure_interface(handle: IPRoute, index: int, *, address: str | None) -> None:
    """Give an interface its address (``a.b.c.d/len``, or None) and bring it up."""
    if address:
        ip, prefix = address.split("/")
        handle.addr("add", index=index, address=ip, prefixlen=int(prefix))
    handle.link("set", index=index, state="up")


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


#: ethtool's legacy per-feature ioctls (linux/ethtool.h), which the kernel still maps onto its
#: feature flags as ``ethtool -K`` does: set TSO, GSO, GRO and tx checksumming.
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
ETHTOOL_STSO = 0x1F
ETHTOOL_SGSO = 0x24
ETHTOOL_SGRO = 0x2C


def disable_offloads(ifname: str, *, tx_checksum: bool) -> None:
    """Segmentation offloads off on an interface of this thread's namespace, so that queues
    hold MTU-sized packets and byte-limited buffers mean what they say; tx checksum offload
    off too for userspace OVS, where TCP otherwise stalls on bad checksums. The same as
    ``ethtool -K IF tso off gso off gro off [tx off]``, without a process per interface."""
    commands = [ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO]
    if tx_checksum:
        commands.append(ETHTOOL_STXCSUM)
    name = check_ifname(ifname).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for command in commands:
            value = ctypes.create_string_buffer(struct.pack("=II", command, 0))
            request = struct.pack("16sP", name, ctypes.addressof(value)).ljust(40, b"\0")
            try:
                fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
            except OSError as exc:
                raise OSError(exc.errno, f"ethtool command {command:#x} on {ifname}: "
                              f"{exc.strerror}") from exc


def interface_counters(handle: IPRoute, ifname: str) -> dict[str, int]:
    (link,) = handle.get_links(link_index(handle, ifname))
    stats = link.get_attr("IFLA_STATS64")
    return {key: int(stats[key]) for key in ("rx_bytes", "tx_bytes", "rx_packets",
                                              "tx_packets", "rx_dropped", "tx_dropped")}
