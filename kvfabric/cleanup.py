"""Find and remove what kvfabric left on the host, and only that.

Ours means: namespaces named ``kvf-*``, root-namespace interfaces and OVS bridges
named ``kvf-*``, OVS QoS rows tagged ``external_ids:kvfabric``, pins under /sys/fs/bpf/kvfabric,
and processes whose network namespace is one of our namespaces or that hold a socket in one
(a sender driving many hosts runs in the root namespace with its sockets in theirs).
Nothing is ever killed by process name.
"""

from __future__ import annotations

import os
import shutil

from fabriccore.commands import CommandError
from fabriccore.naming import BPF_PIN_DIR, IFACE_PREFIX, NETNS_DIR, NETNS_PREFIX
from fabriccore.processes import kill_processes_in_namespaces, processes_in_namespaces


def our_namespaces() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(NETNS_PREFIX))


def our_root_interfaces() -> list[str]:
    return sorted(name for name in os.listdir("/sys/class/net") if name.startswith(IFACE_PREFIX))


class ListingError(RuntimeError):
    """Some kind of leftover could not be listed: what kvfabric left is not fully known."""

    def __init__(self, failures: dict[str, str], found: dict[str, list]):
        self.failures = failures
        self.found = found  # what could be listed
        super().__init__("could not list " + "; ".join(
            f"{kind} ({why})" for kind, why in failures.items()))


#: ovs-vsctl's words when ovsdb-server is not running (its socket is missing).
_OVS_DOWN = ("database connection failed", "No such file or directory")


def _ovs_query(what: str, func, notes: list[str]) -> list[str]:
    """func() lists OVS rows. Without OVS (not installed, not running) there is nothing to
    list, which is noted; any other failure raises."""
    if shutil.which("ovs-vsctl") is None:
        notes.append(f"{what}: not listed, ovs-vsctl is not installed (no OVS, no bridges)")
        return []
    try:
        return func()
    except CommandError as exc:
        if any(words in exc.stderr for words in _OVS_DOWN):
            notes.append(f"{what}: not listed, Open vSwitch is not running; bridges in its "
                         "database come back when it starts: start it and run kvfabric "
                         "clean again")
            return []
        raise


def our_bridges(notes: list[str] | None = None) -> list[str]:
    from topologies.openflow import list_bridges
    return [b for b in _ovs_query("OVS bridges", list_bridges, [] if notes is None else notes)
            if b.startswith(IFACE_PREFIX)]


def our_qos_rows(notes: list[str] | None = None) -> list[str]:
    from topologies.openflow import our_qos_rows as query
    return _ovs_query("OVS QoS rows", query, [] if notes is None else notes)


def our_agents() -> list[int]:
    """Queue agents (root namespace) still running: each registers its pid in a file."""
    from topologies.queues.agent_registry import live_agent_pids

    return live_agent_pids()


def ovs_send_buffer_raised() -> list[str]:
    from topologies.ovs_send_buffer import STATE_FILE

    return [str(STATE_FILE)] if STATE_FILE.exists() else []


def bpf_pins() -> list[str]:
    return sorted(str(p) for p in BPF_PIN_DIR.rglob("*")) if BPF_PIN_DIR.exists() else []


def leftovers(notes: list[str] | None = None) -> dict[str, list]:
    """What kvfabric created that still exists. Raises ListingError (carrying what could
    be listed) when a kind cannot be listed; notes get what was skipped as expected."""
    notes = [] if notes is None else notes
    listers = {"namespaces": our_namespaces,
               "processes": lambda: processes_in_namespaces(found["namespaces"]),
               "queue_agents": our_agents, "bridges": lambda: our_bridges(notes),
               "ovs_qos": lambda: our_qos_rows(notes), "interfaces": our_root_interfaces,
               "bpf_pins": bpf_pins, "ovs_send_buffer": ovs_send_buffer_raised}
    found: dict[str, list] = {}
    failures: dict[str, str] = {}
    for kind, lister in listers.items():
        try:
            found[kind] = lister()
        except (OSError, CommandError) as exc:
            found[kind] = []
            failures[kind] = str(exc).replace("\n", " ")
    if failures:
        raise ListingError(failures, found)
    return found


def clean(notes: list[str] | None = None) -> dict[str, list]:
    """Remove every leftover; returns what was found (and removed). When a kind could not be
    listed, what could be is still removed, then ListingError is raised."""
    from topologies import netlink, openflow
    from topologies.ovs_send_buffer import restore
    from topologies.queues.agent_registry import stop_agents

    incomplete = None
    try:
        found = leftovers(notes)
    except ListingError as exc:
        found, incomplete = exc.found, exc
    stop_agents(found["queue_agents"])
    kill_processes_in_namespaces(found["namespaces"])
    openflow.delete_bridges(found["bridges"])
    if "ovs_qos" not in (incomplete.failures if incomplete else {}):
        openflow.delete_qos_rows(our_qos_rows())  # deleting bridges frees more rows
    netlink.delete_root_interfaces(our_root_interfaces())
    for name in found["namespaces"]:
        netlink.delete_namespace(name)
    if BPF_PIN_DIR.exists():
        shutil.rmtree(BPF_PIN_DIR, ignore_errors=True)
    if found["ovs_send_buffer"]:
        restore()
    if incomplete:
        raise ListingError(incomplete.failures, found)
    return found
