"""The fabric controller app (OpenFlow 1.3): proactive multipath forwarding, tenant isolation
and meters, link-failure recovery, and (mode "adaptive") elephant rerouting on live load.

Tables on a switch with hosts (an edge switch):
  0  admission: from an uplink -> table 1; from host H: IPv4 and ARP to hosts of H's tenant
     (source address pinned to H) -> [tenant meter when the destination is remote] -> table 1;
     anything else is dropped (default deny, so no packet of any kind crosses tenants).
  1  forwarding by destination address: the local port, or a select group per destination
     over the next hops on shortest live paths (OVS hashes the five-tuple: ECMP). In adaptive
     mode TCP/UDP to remote hosts is also copied to the controller until an exact-match rule
     pins the flow to one uplink, which the controller can later move.
Switches without hosts only forward (table 0 -> table 1).

On a port-status change the routes are recomputed over the live links and only the groups
(and pinned flows) whose next hops changed are rewritten. Group buckets watch their port, so
OVS itself skips a local dead uplink before the controller reacts.

Configuration comes from ``CONFIG`` (set by controllers/launch.py before the app loads).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .adaptive import AdaptiveParams, LoadMonitor
from .compat import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    App,
    ethernet,
    hub,
    ipv4,
    ofp_event,
    ofproto_v1_3,
    packet,
    set_ev_cls,
    tcp,
    udp,
)
from .model import FabricModel, pick_initial_port

CONFIG: dict[str, Any] = {}

COOKIE_BASE = 0x4B56000000000001
COOKIE_PINNED = 0x4B56000000000002
PINNED_IDLE_TIMEOUT_S = 10
ETH_IP, ETH_ARP = 0x0800, 0x0806
PROTO_TCP, PROTO_UDP = 6, 17


class EventLog:
    """Timestamped controller events, one JSON object a line (wall clock, so that workloads
    in other processes can line them up with their own samples)."""

    def __init__(self, path: str | None):
        self.file = open(path, "a", buffering=1) if path else None  # noqa: SIM115

    def write(self, kind: str, **fields) -> None:
        if self.file:
            self.file.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")


class FabricController(App):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mode = CONFIG.get("mode", "ecmp")
        self.model = FabricModel.from_dict(json.loads(Path(CONFIG["topology"]).read_text()))
        self.event_log = EventLog(CONFIG.get("events"))
        self.status_path = CONFIG.get("status")
        self.poll_interval_s = float(CONFIG.get("poll_interval_s", 0.01))
        self.flow_poll_every = int(CONFIG.get("flow_poll_every", 5))
        self.datapaths: dict[str, Any] = {}
        self.configured: set[str] = set()
        self.routes = self.model.routes()
        self.host_by_ip = {h.ip: h.name for h in self.model.hosts.values()}
        self.pinned: dict[str, dict[tuple, int]] = {s: {} for s in self.model.switches}
        capacity = {(s, p): self.model.switches[s].ports[p].rate_bps
                    for s in self.edge_switches() for p in self.model.uplinks(s)}
        self.monitor = LoadMonitor(AdaptiveParams(**CONFIG.get("adaptive", {})), capacity)
        self.replies = 0
        self._write_status()
        self.event_log.write("start", mode=self.mode, switches=sorted(self.model.switches))
        if self.mode == "adaptive":
            hub.spawn(self._poll_loop)

    # -- helpers -----------------------------------------------------------------------
    def edge_switches(self) -> list[str]:
        return [s for s in self.model.switches if self.model.host_ports(s)]

    def _write_status(self) -> None:
        if not self.status_path:
            return
        tmp = Path(self.status_path + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "mode": self.mode,
                                   "connected": sorted(self.datapaths),
                                   "configured": sorted(self.configured),
                                   "switches": sorted(self.model.switches)}))
        tmp.replace(self.status_path)

    def _group_id(self, host: str) -> int:
        return self.model.sorted_hosts().index(host) + 1

    @staticmethod
    def _flow(dp, table: int, priority: int, match, actions=None, goto: int | None = None,
              meter: int | None = None, cookie: int = COOKIE_BASE, idle: int = 0,
              flags: int = 0, command=None):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = []
        if meter is not None:
            inst.append(parser.OFPInstructionMeter(meter, ofp.OFPIT_METER))
        if actions:
            inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
        if goto is not None:
            inst.append(parser.OFPInstructionGotoTable(goto))
        dp.send_msg(parser.OFPFlowMod(
            dp, cookie=cookie, table_id=table, priority=priority, match=match,
            instructions=inst, idle_timeout=idle, flags=flags,
            command=ofp.OFPFC_ADD if command is None else command))

    def _group(self, dp, gid: int, ports: tuple[int, ...], command) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        buckets = [parser.OFPBucket(weight=1, watch_port=p, watch_group=ofp.OFPG_ANY,
                                    actions=[parser.OFPActionOutput(p)]) for p in ports]
        dp.send_msg(parser.OFPGroupMod(dp, command, ofp.OFPGT_SELECT, gid, buckets))

    # -- switch connection ---------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev) -> None:
        dp = ev.msg.datapath
        switch = self.model.switch_by_dpid(dp.id)
        if switch is None:
            self.logger.warning("ignoring unknown datapath %016x", dp.id)
            return
        self.datapaths[switch.name] = dp
        self.event_log.write("connected", switch=switch.name)
        self._install(switch.name, dp)
        dp.send_msg(dp.ofproto_parser.OFPBarrierRequest(dp))
        self._write_status()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier_reply(self, ev) -> None:
        switch = self.model.switch_by_dpid(ev.msg.datapath.id)
        if switch and switch.name not in self.configured:
            self.configured.add(switch.name)
            self.event_log.write("configured", switch=switch.name)
            self._write_status()

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def switch_gone(self, ev) -> None:
        switch = self.model.switch_by_dpid(ev.datapath.id or 0)
        if switch and self.datapaths.get(switch.name) is ev.datapath:
            del self.datapaths[switch.name]
            self.configured.discard(switch.name)
            self.event_log.write("disconnected", switch=switch.name)
            self._write_status()

    def _install(self, name: str, dp) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        model = self.model
        # Start from a clean switch: a reconnect must not keep stale state.
        dp.send_msg(parser.OFPFlowMod(dp, table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY))
        dp.send_msg(parser.OFPGroupMod(dp, ofp.OFPGC_DELETE, 0, ofp.OFPG_ALL))
        dp.send_msg(parser.OFPMeterMod(dp, ofp.OFPMC_DELETE, 0, ofp.OFPM_ALL))
        self.pinned[name] = {}
        host_ports = model.host_ports(name)
        meters = model.tenant_meters and bool(model.tenants) and bool(host_ports)
        tenant_ids = model.tenant_ids()
        if meters:
            rate_kbps = max(1, model.meter_rate_bps(name) // 1000)
            burst_kb = max(1, model.meter_burst_bytes * 8 // 1000)
            for meter_id in tenant_ids.values():
                dp.send_msg(parser.OFPMeterMod(
                    dp, ofp.OFPMC_ADD, ofp.OFPMF_KBPS | ofp.OFPMF_BURST, meter_id,
                    [parser.OFPMeterBandDrop(rate=rate_kbps, burst_size=burst_kb)]))
        # table 0: admission
        if host_ports:
            for port in model.uplinks(name):
                self._flow(dp, 0, 300, parser.OFPMatch(in_port=port), goto=1)
            for port, src in host_ports.items():
                src_ip = model.hosts[src].ip
                for dst in model.sorted_hosts():
                    if not model.allowed(src, dst):
                        continue
                    dst_ip = model.hosts[dst].ip
                    meter = (tenant_ids[model.tenant_of(src)]
                             if meters and model.is_remote(name, dst) else None)
                    self._flow(dp, 0, 200, parser.OFPMatch(
                        in_port=port, eth_type=ETH_IP, ipv4_src=src_ip, ipv4_dst=dst_ip),
                        goto=1, meter=meter)
                    self._flow(dp, 0, 200, parser.OFPMatch(
                        in_port=port, eth_type=ETH_ARP, arp_spa=src_ip, arp_tpa=dst_ip),
                        goto=1)
            self._flow(dp, 0, 0, parser.OFPMatch())  # default deny: no instructions = drop
        else:
            self._flow(dp, 0, 0, parser.OFPMatch(), goto=1)
        # table 1: forwarding
        for dst in model.sorted_hosts():
            ip = model.hosts[dst].ip
            ports = self.routes[name][dst]
            if not model.is_remote(name, dst):
                actions = [parser.OFPActionOutput(ports[0])]
            else:
                self._group(dp, self._group_id(dst), ports, ofp.OFPGC_ADD)
                actions = [parser.OFPActionGroup(self._group_id(dst))]
            self._flow(dp, 1, 100, parser.OFPMatch(eth_type=ETH_IP, ipv4_dst=ip), actions)
            self._flow(dp, 1, 100, parser.OFPMatch(eth_type=ETH_ARP, arp_tpa=ip), actions)
            if self.mode == "adaptive" and host_ports and model.is_remote(name, dst):
                notify = actions + [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 128)]
                for proto in (PROTO_TCP, PROTO_UDP):
                    self._flow(dp, 1, 110, parser.OFPMatch(
                        eth_type=ETH_IP, ip_proto=proto, ipv4_dst=ip), notify)

    # -- link failure ------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status(self, ev) -> None:
        started = time.time()
        dp, desc = ev.msg.datapath, ev.msg.desc
        ofp = dp.ofproto
        switch = self.model.switch_by_dpid(dp.id)
        if switch is None or desc.port_no not in switch.ports:
            return
        up = not (desc.state & ofp.OFPPS_LINK_DOWN or desc.config & ofp.OFPPC_PORT_DOWN)
        if not self.model.set_port(switch.name, desc.port_no, up):
            return
        old, self.routes = self.routes, self.model.routes()
        changed = 0
        for name, table in self.routes.items():
            peer_dp = self.datapaths.get(name)
            if peer_dp is None:
                continue
            for dst, ports in table.items():
                if ports != old[name][dst] and self.model.is_remote(name, dst):
                    self._group(peer_dp, self._group_id(dst), ports,
                                peer_dp.ofproto.OFPGC_MODIFY)
                    changed += 1
            changed += self._repin_dead(name, peer_dp)
        self.event_log.write("port_status", switch=switch.name, port=desc.port_no, up=up,
                          groups_changed=changed, handled_s=time.time() - started)

    def _repin_dead(self, name: str, dp) -> int:
        moved = 0
        for flow, port in list(self.pinned[name].items()):
            dst = self._host_by_ip(flow[1])
            ports = self.routes[name].get(dst, ()) if dst else ()
            if port in ports or not ports:
                continue
            new = min(ports, key=lambda p: (self.monitor.util(name, p), p))
            self._pin(dp, name, flow, new, modify=True)
            self.event_log.write("repin", switch=name, flow=list(flow), old_port=port,
                              new_port=new, reason="link down")
            moved += 1
        return moved

    # -- adaptive: flow placement ----------------------------------------------------------
    def _host_by_ip(self, ip: str) -> str | None:
        return self.host_by_ip.get(ip)

    def _flow_match(self, parser, flow: tuple):
        src, dst, proto, sport, dport = flow
        if proto == PROTO_TCP:
            return parser.OFPMatch(eth_type=ETH_IP, ip_proto=proto, ipv4_src=src,
                                   ipv4_dst=dst, tcp_src=sport, tcp_dst=dport)
        return parser.OFPMatch(eth_type=ETH_IP, ip_proto=proto, ipv4_src=src, ipv4_dst=dst,
                               udp_src=sport, udp_dst=dport)

    def _pin(self, dp, name: str, flow: tuple, port: int, modify: bool = False) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self._flow(dp, 1, 120, self._flow_match(parser, flow), [parser.OFPActionOutput(port)],
                   cookie=COOKIE_PINNED, idle=PINNED_IDLE_TIMEOUT_S,
                   flags=ofp.OFPFF_SEND_FLOW_REM,
                   command=ofp.OFPFC_MODIFY_STRICT if modify else None)
        self.pinned[name][flow] = port

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev) -> None:
        if self.mode != "adaptive":
            return
        dp = ev.msg.datapath
        switch = self.model.switch_by_dpid(dp.id)
        if switch is None:
            return
        pkt = packet.Packet(ev.msg.data)
        ip = pkt.get_protocol(ipv4.ipv4)
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        if ip is None or l4 is None or pkt.get_protocol(ethernet.ethernet) is None:
            return
        flow = (ip.src, ip.dst, ip.proto, l4.src_port, l4.dst_port)
        if flow in self.pinned[switch.name]:
            return
        dst = self._host_by_ip(ip.dst)
        ports = self.routes[switch.name].get(dst, ()) if dst else ()
        if not ports or not self.model.is_remote(switch.name, dst):
            return
        port = pick_initial_port(ports, flow)
        self._pin(dp, switch.name, flow, port)
        self.event_log.write("pin", switch=switch.name, flow=list(flow), port=port)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev) -> None:
        switch = self.model.switch_by_dpid(ev.msg.datapath.id)
        if switch is None or ev.msg.cookie != COOKIE_PINNED:
            return
        match = ev.msg.match
        proto = match["ip_proto"]
        sport = match["tcp_src"] if proto == PROTO_TCP else match["udp_src"]
        dport = match["tcp_dst"] if proto == PROTO_TCP else match["udp_dst"]
        flow = (match["ipv4_src"], match["ipv4_dst"], proto, sport, dport)
        self.pinned[switch.name].pop(flow, None)
        self.monitor.forget_flow(switch.name, flow)

    # -- adaptive: load monitoring ---------------------------------------------------------
    def _poll_loop(self) -> None:
        tick, window_start, window_replies = 0, time.monotonic(), 0
        next_poll = time.monotonic()
        while True:
            for name in self.edge_switches():
                dp = self.datapaths.get(name)
                if dp is None:
                    continue
                ofp, parser = dp.ofproto, dp.ofproto_parser
                dp.send_msg(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
                if tick % self.flow_poll_every == 0:
                    dp.send_msg(parser.OFPFlowStatsRequest(
                        dp, 0, 1, ofp.OFPP_ANY, ofp.OFPG_ANY, COOKIE_PINNED,
                        0xFFFFFFFFFFFFFFFF, parser.OFPMatch()))
            tick += 1
            now = time.monotonic()
            if now - window_start >= 1.0:
                self.event_log.write("poll_rate", requested_hz=1 / self.poll_interval_s,
                                  port_stats_replies_hz=(self.replies - window_replies)
                                  / (now - window_start) / max(1, len(self.edge_switches())))
                window_start, window_replies = now, self.replies
            # Fixed-rate schedule: the time spent sending requests is not added to the period.
            next_poll += self.poll_interval_s
            hub.sleep(max(0.0, next_poll - time.monotonic()))

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def port_stats_reply(self, ev) -> None:
        now = time.time()
        dp = ev.msg.datapath
        switch = self.model.switch_by_dpid(dp.id)
        if switch is None:
            return
        self.replies += 1
        for stat in ev.msg.body:
            self.monitor.port_sample(switch.name, stat.port_no, now, stat.tx_bytes)
        move = self.monitor.decide(
            switch.name, now, self.pinned[switch.name],
            lambda flow: self.routes[switch.name].get(self._host_by_ip(flow[1]), ()))
        if move is not None:
            self._pin(dp, switch.name, move.flow, move.new_port, modify=True)
            self.event_log.write("reroute", switch=switch.name, flow=list(move.flow),
                              old_port=move.old_port, new_port=move.new_port,
                              flow_rate_bps=move.flow_rate_bps, old_util=move.old_util,
                              new_util=move.new_util)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply(self, ev) -> None:
        now = time.time()
        switch = self.model.switch_by_dpid(ev.msg.datapath.id)
        if switch is None:
            return
        for stat in ev.msg.body:
            if stat.cookie != COOKIE_PINNED:
                continue
            match = stat.match
            proto = match["ip_proto"]
            sport = match["tcp_src"] if proto == PROTO_TCP else match["udp_src"]
            dport = match["tcp_dst"] if proto == PROTO_TCP else match["udp_dst"]
            flow = (match["ipv4_src"], match["ipv4_dst"], proto, sport, dport)
            self.monitor.flow_sample(switch.name, flow, now, stat.byte_count)
