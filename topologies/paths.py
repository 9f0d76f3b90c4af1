"""Pure graph questions about a fabric: shortest paths, equal-cost next hops, switch ports.

The one shortest-path ECMP rule (`bfs_hops`, `downhill`), used by both fabric modes (the L3
mode turns next hops into kernel multipath routes, the OpenFlow mode into select groups) and
by the OpenFlow controller's live model (controllers/model.py), over its links that are up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .leafspine import FabricTopo

Key = TypeVar("Key", bound=Hashable)


def bfs_hops(target: str, onward: Callable[[str], Iterable[str]]) -> dict[str, int]:
    """Hops to `target` from every node that reaches it. `onward(node)`: the nodes one hop
    from `node` through which a path to the target may continue (links are symmetric)."""
    distance = {target: 0}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        for neighbor in onward(node):
            if neighbor not in distance:
                distance[neighbor] = distance[node] + 1
                queue.append(neighbor)
    return distance


def downhill(distance: dict[str, int], node: str,
             steps: Iterable[tuple[Key, str]]) -> list[Key]:
    """The equal-cost next hops of `node`: keys of its `steps` (key, neighbor) whose neighbor
    is one hop nearer the target of `distance`, sorted; none if `node` does not reach it."""
    if node not in distance:
        return []
    return sorted(key for key, neighbor in steps
                  if distance.get(neighbor, 1 << 30) == distance[node] - 1)


def hop_distances(topo: FabricTopo, target: str) -> dict[str, int]:
    """Hops from every node to target, never transiting a host (hosts do not forward)."""
    return bfs_hops(target, lambda node: () if node != target and topo.role(node) == "host"
                    else topo.neighbors(node))


def equal_cost_next_hops(topo: FabricTopo, router: str, target_host: str,
                         distance: dict[str, int] | None = None) -> list[str]:
    """Neighbors of router that lie on a shortest path to target_host, sorted by name
    (`distance`: hop_distances(topo, target_host), when the caller already has it)."""
    if distance is None:
        distance = hop_distances(topo, target_host)
    return downhill(distance, router,
                    ((n, n) for n in topo.neighbors(router)
                     if n == target_host or topo.role(n) != "host"))


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
