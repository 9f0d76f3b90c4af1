"""OpenFlow fabric mode: leaves and spines are Open vSwitch bridges in the root namespace.

Bridges use the datapath the capability probe chose (`fabriccore.backends.Backends`): the
kernel's where it has the openvswitch datapath, else the userspace ``netdev`` one. Until a
controller is attached, kvfabric installs static rules itself: per destination host, an output
to the host port or a select group over the equal-cost uplinks (OVS hashes the flow's
five-tuple), so the fabric forwards and spreads flows.
"""

from __future__ import annotations

from fabriccore.commands import run
from fabriccore.naming import IFACE_PREFIX

from .addressing import LinkPlan, host_address_flat
from .leafspine import FabricTopo
from .paths import equal_cost_next_hops, switch_port

OVS_TIMEOUT_S = 30


def bridge_name(switch: str) -> str:
    return f"{IFACE_PREFIX}{switch}"


def port_name(ifname: str) -> str:
    """Root-namespace name of a switch port: ``kvf-l1-eth3``."""
    return f"{IFACE_PREFIX}{ifname}"


def dpid(topo: FabricTopo, switch: str) -> str:
    return topo.nodeInfo(switch)["dpid"]


#: OVS otherwise replaces a port's qdiscs with its own; a ``linux-noop`` QoS row tells it to
#: leave kvfabric's queues alone. QoS rows are OVSDB roots (they outlive their bridges), so
#: ours are tagged and destroyed explicitly.
QOS_TAG = "external_ids:kvfabric=noop"


def create_bridges(topo: FabricTopo, plans: list[LinkPlan], datapath: str) -> None:
    """All bridges and their ports in one ovs-vsctl transaction."""
    argv = ["ovs-vsctl", f"--timeout={OVS_TIMEOUT_S}",
            "--", "--id=@noop", "create", "qos", "type=linux-noop", QOS_TAG]
    for switch in topo.routers():
        br = bridge_name(switch)
        argv += ["--", "add-br", br, "--", "set", "bridge", br, f"datapath_type={datapath}",
                 "fail_mode=secure", "protocols=OpenFlow13",
                 f"other_config:datapath-id={dpid(topo, switch)}",
                 "other_config:disable-in-band=true"]
    for plan in plans:
        for end in (plan.a, plan.b):
            if topo.role(end.node) == "host":
                continue
            port = port_name(end.ifname)
            number = switch_port(topo, end.node, end.peer_node)
            argv += ["--", "add-port", bridge_name(end.node), port,
                     "--", "set", "interface", port, f"ofport_request={number}",
                     "--", "set", "port", port, "qos=@noop"]
    run(argv, timeout_s=OVS_TIMEOUT_S + 5)


def delete_bridges(names: list[str]) -> None:
    """Delete these bridges and every QoS row kvfabric tagged."""
    if not names:
        return
    argv = ["ovs-vsctl", f"--timeout={OVS_TIMEOUT_S}"]
    for br in names:
        argv += ["--", "--if-exists", "del-br", br]
    run(argv, timeout_s=OVS_TIMEOUT_S + 5)
    # A separate transaction: OVSDB checks references against the committed state.
    delete_qos_rows(our_qos_rows())


def delete_qos_rows(uuids: list[str]) -> None:
    if uuids:
        argv = ["ovs-vsctl", f"--timeout={OVS_TIMEOUT_S}"]
        for uuid in uuids:
            argv += ["--", "destroy", "qos", uuid]
        run(argv, timeout_s=OVS_TIMEOUT_S + 5)


def our_qos_rows() -> list[str]:
    out = run(["ovs-vsctl", "--timeout=5", "--bare", "--columns=_uuid", "find", "qos",
               QOS_TAG], timeout_s=10).stdout
    return out.split()


def list_bridges() -> list[str]:
    out = run(["ovs-vsctl", "--timeout=5", "list-br"], timeout_s=10).stdout
    return [line for line in out.split() if line]


def static_rules(topo: FabricTopo, switch: str) -> tuple[list[str], list[str]]:
    """(groups, flows) in ovs-ofctl syntax for switch: shortest paths to every host."""
    groups: dict[tuple[int, ...], int] = {}
    flows = []
    for host in sorted(topo.host_names(), key=lambda h: int(h[1:])):
        hops = equal_cost_next_hops(topo, switch, host)
        ports = tuple(switch_port(topo, switch, hop) for hop in hops)
        if not ports:
            continue
        if len(ports) == 1:
            action = f"output:{ports[0]}"
        else:
            group_id = groups.setdefault(ports, len(groups) + 1)
            action = f"group:{group_id}"
        ip = host_address_flat(host).ip
        flows.append(f"table=0,priority=100,ip,nw_dst={ip},actions={action}")
        flows.append(f"table=0,priority=100,arp,arp_tpa={ip},actions={action}")
    group_lines = [
        f"group_id={gid},type=select," + ",".join(f"bucket=output:{p}" for p in ports)
        for ports, gid in groups.items()]
    return group_lines, flows


def install_static_rules(topo: FabricTopo) -> None:
    for switch in topo.routers():
        groups, flows = static_rules(topo, switch)
        br = bridge_name(switch)
        if groups:
            run(["ovs-ofctl", "-O", "OpenFlow13", "add-groups", br, "-"],
                input_text="\n".join(groups) + "\n")
        run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", br, "-"],
            input_text="\n".join(flows) + "\n")
