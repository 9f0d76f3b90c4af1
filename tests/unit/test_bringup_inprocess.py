"""The in-process pieces of bring-up (fabriccore/netns.py, topologies/netlink.py, the
tc_netlink filter dump, the PFC frame templates, the topology's adjacency), without a fabric.
The live bring-up is exercised by every root test that builds one."""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.contrib.mac_control import MACControlClassBasedFlowControl
from scapy.layers.l2 import Ether

from fabriccore import netns
from topologies import netlink
from topologies.leafspine import LeafSpine
from topologies.paths import equal_cost_next_hops, hop_distances
from topologies.queues import tc_netlink
from topologies.queues.pfc_frames import pfc_frame
from topologies.queues.tc_netlink import TCA_BPF_ID, TCA_KIND, TCA_OPTIONS, _attr


def test_write_sysctls_refuses_what_is_not_a_per_namespace_net_sysctl():
    with pytest.raises(ValueError, match="only per-namespace net"):
        netns.write_sysctls(None, {"kernel.pid_max": 1})


def test_create_namespaces_is_one_ip_batch(monkeypatch):
    calls = []
    monkeypatch.setattr(netns, "run", lambda argv, **kw: calls.append((argv, kw)))
    netns.create_namespaces(["kvf-h1", "kvf-l1"])
    ((argv, kw),) = calls
    assert argv == ["ip", "-batch", "-"]
    assert kw["input_text"] == "netns add kvf-h1\nnetns add kvf-l1\n"
    netns.create_namespaces([])
    assert len(calls) == 1  # nothing to create: no process


def test_create_veth_creates_each_end_in_its_namespace_with_name_mtu_and_mac():
    class Handle:
        def link(self, command, **attrs):
            self.call = (command, attrs)

    handle = Handle()
    netlink.create_veth(handle, {"ifname": "h1-eth0", "mtu": 1500, "netns": "kvf-h1",
                                 "address": "02:00:00:00:00:01"},
                        {"ifname": "kvf-l1-eth1", "mtu": 1500, "netns": None, "address": None})
    assert handle.call == ("add", {
        "kind": "veth", "ifname": "h1-eth0", "mtu": 1500, "address": "02:00:00:00:00:01",
        "net_ns_fd": "kvf-h1", "peer": {"ifname": "kvf-l1-eth1", "mtu": 1500}})


def test_disable_offloads_sends_the_legacy_ethtool_commands(monkeypatch):
    sent = []

    def ioctl(fd, request, arg):
        name, pointer = struct.unpack_from("16sP", arg)
        import ctypes
        command, _data = struct.unpack("=II", ctypes.string_at(pointer, 8))
        sent.append((request, name.rstrip(b"\0"), command))

    monkeypatch.setattr(netlink.fcntl, "ioctl", ioctl)
    netlink.disable_offloads("h1-eth0", tx_checksum=False)
    assert sent == [(0x8946, b"h1-eth0", c) for c in (0x1F, 0x24, 0x2C)]  # TSO, GSO, GRO
    sent.clear()
    netlink.disable_offloads("kvf-l1-eth1", tx_checksum=True)
    assert [c for *_, c in sent] == [0x1F, 0x24, 0x2C, 0x17]  # and tx checksumming


def test_egress_bpf_prog_ids_reads_the_program_id_of_the_filter_with_our_pref():
    route = tc_netlink.RouteSocket.__new__(tc_netlink.RouteSocket)
    route.netns, route._seq = None, 0

    def message(pref: int, kind: bytes, options: bytes) -> bytes:
        return (tc_netlink._TCMSG.pack(socket.AF_UNSPEC, 5, 1, 0xFFFFFFF3, pref << 16)
                + _attr(TCA_KIND, kind) + (_attr(TCA_OPTIONS, options) if options else b""))

    ours = message(49152, b"bpf\0", _attr(7, b"ecn_marker.o:[tc]\0")
                   + _attr(TCA_BPF_ID, struct.pack("=I", 42)))
    head = message(49152, b"bpf\0", b"")             # the chain's head: no options
    other = message(100, b"bpf\0", _attr(TCA_BPF_ID, struct.pack("=I", 7)))
    sent = []
    route._send = lambda msg_type, flags, payload: sent.append((msg_type, payload)) or 1
    route._replies = lambda seq: iter([(44, head), (44, ours), (44, other)])
    assert route.egress_bpf_prog_ids(5, 49152) == [42]
    ((msg_type, payload),) = sent
    assert msg_type == tc_netlink.RTM_GETTFILTER
    assert tc_netlink._TCMSG.unpack_from(payload)[1:] == (5, 0, 0xFFFFFFF3, 49152 << 16)


@pytest.mark.parametrize("quanta", [{3: 0xFFFF}, {3: 0}, {0: 10, 7: 65535}])
def test_pfc_frames_from_the_template_are_scapy_s_frames(quanta):
    mac = "02:00:00:00:00:2a"
    fields = {f"c{p}_{k}": v for p, q in quanta.items()
              for k, v in (("enabled", 1), ("pause_time", q))}
    expected = bytes(Ether(dst="01:80:c2:00:00:01", src=mac, type=0x8808)
                     / MACControlClassBasedFlowControl(**fields))
    assert pfc_frame(mac, quanta) == expected
    assert pfc_frame("02:00:00:00:00:2b", quanta)[6:12] == bytes.fromhex("02000000002b")


@pytest.mark.parametrize("mac", ["02:00:00:00:00", "zz:00:00:00:00:00", ""])
def test_pfc_frame_refuses_a_source_mac_that_is_not_six_bytes(mac):
    with pytest.raises(ValueError, match="source MAC"):
        pfc_frame(mac, {3: 1})


def test_neighbors_follow_links_added_after_the_first_question():
    topo = LeafSpine(spines=2, leaves=2, hosts_per_leaf=1)
    assert topo.neighbors("l1") == ["h1", "s1", "s2"]
    topo.add_link(topo.add_host("h9"), "l1", topo.host_rate_bps)
    assert topo.neighbors("l1") == ["h1", "s1", "s2", "h9"]
    assert topo.neighbors("h9") == ["l1"]


def test_next_hops_with_the_distances_given_are_those_computed_alone():
    topo = LeafSpine(spines=2, leaves=3, hosts_per_leaf=2)
    for host in topo.host_names():
        distance = hop_distances(topo, host)
        for router in topo.routers():
            assert (equal_cost_next_hops(topo, router, host, distance)
                    == equal_cost_next_hops(topo, router, host))
