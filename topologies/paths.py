"""Pure graph questions about a fabric: shortest paths, equal-cost next hops, switch ports.

Shared by both fabric modes: the L3 mode turns next hops into kernel multipath routes, the
OpenFlow mode into select groups.
"""

from __future__ import annotations

from collections import deque

from .leafspine import FabricTopo


def hop_distances(topo: FabricTopo, target: str) -> dict[str, int]:
    """Hops from every node to target, never transiting a host (hosts do not forward)."""
    distance = {target: 0}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        if node != target and topo.role(node) == "host":
            continue
        for neighbor in topo.neighbors(node):
            if neighbor not in distance:
                distance[neighbor] = distance[node] + 1
                queue.append(neighbor)
    return distance


def equal_cost_next_hops(topo: FabricTopo, router: str, target_host: str) -> list[str]:
    """Neighbors of router that lie on a shortest path to target_host, sorted by name."""
    distance = hop_distances(topo, target_host)
    if router not in distance:
        return []
    return sorted(n for n in topo.neighbors(router)
                  if (n == target_host or topo.role(n) != "host")
                  and distance.get(n, 1 << 30) == distance[router] - 1)


def count_equal_cost_paths(topo: FabricTopo, src_host: str, dst_host: str) -> int:
    """Number of distinct shortest paths from src_host to dst_host."""
    distance = hop_distances(topo, dst_host)
    ways = {dst_host: 1}
    for node in sorted(distance, key=distance.get):
        if node == dst_host:
            continue
        if topo.role(node) == "host" and node != src_host:
            continue
        ways[node] = sum(ways.get(n, 0) for n in topo.neighbors(node)
                         if distance.get(n) == distance[node] - 1
                         and (n == dst_host or topo.role(n) != "host"))
    return ways.get(src_host, 0)


def switch_port(topo: FabricTopo, node: str, neighbor: str) -> int:
    """The port number on node that faces neighbor (Mininet's numbering, from 1 for switches)."""
    port, _ = topo.port(node, neighbor)
    return port
