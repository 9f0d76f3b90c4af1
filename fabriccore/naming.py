"""Names of everything kvfabric creates on the host, so that teardown and `kvfabric clean`
can find exactly what is ours and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

PREFIX = "kvf"
#: Network namespaces: ``kvf-<node>``.
NETNS_PREFIX = f"{PREFIX}-"
#: Root-namespace interfaces and OVS bridges (openflow mode): ``kvf-<node>...``.
IFACE_PREFIX = f"{PREFIX}-"
#: Pinned BPF objects live under this directory only.
BPF_PIN_DIR = Path("/sys/fs/bpf/kvfabric")
#: Runtime state: the global lock and the record of what the current run started.
RUN_DIR = Path("/run/kvfabric")
LOCK_PATH = RUN_DIR / "fabric.lock"
#: Where iproute2 (and pyroute2) keep named network namespaces.
NETNS_DIR = Path("/run/netns")

NODE_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
IFNAMSIZ = 15


def netns_name(node: str) -> str:
    return f"{NETNS_PREFIX}{node}"


def check_node_name(node: str) -> str:
    """Node names become namespace and interface names: keep them short and shell-safe."""
    if not NODE_NAME_RE.match(node):
        raise ValueError(
            f"node name {node!r} must be 1-8 lowercase letters/digits starting with a letter")
    return node


def check_ifname(name: str) -> str:
    if len(name) > IFNAMSIZ or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"interface name {name!r} is not a valid Linux interface name")
    return name
