"""Probe what this host can emulate and pick, for every missing piece, the backend that replaces it.

Every kernel feature is tested by really using it inside a throwaway network namespace
(``kvfprobe-<pid>``): a qdisc counts as present only if the kernel accepted it, cls_bpf only if a
compiled program was attached. Nothing in the root namespace is touched, and the namespace and the
temporary build directory are removed even when a probe fails.

One job a module: `checks` (what a result is, what is probed), `host_probes` and
`kernel_probes` (the probes), `policy` (fallbacks, fixes, the backend decision) and `report`
(`probe_host`, `HostReport`).
"""

from .checks import (
    FALLBACK,
    MINIMUM,
    MISSING,
    NOT_PROBED,
    OK,
    PY_DEPS,
    QDISC_KINDS,
    REQUIRED,
    TCP_CCS,
    TOOLS,
    Check,
)
from .host_probes import modules_loadable
from .kernel_probes import PROBE_NETNS_PREFIX, probe_netns_name
from .policy import ECN_EBPF_FALLBACK, OVS_USER_FALLBACK, annotate, choose_backends, fix_for
from .report import SCHEMA_VERSION, HostReport, probe_host

__all__ = [
    "ECN_EBPF_FALLBACK", "FALLBACK", "MINIMUM", "MISSING", "NOT_PROBED", "OK",
    "OVS_USER_FALLBACK", "PROBE_NETNS_PREFIX", "PY_DEPS", "QDISC_KINDS", "REQUIRED",
    "SCHEMA_VERSION", "TCP_CCS", "TOOLS", "Check", "HostReport", "annotate",
    "choose_backends", "fix_for", "modules_loadable", "probe_host", "probe_netns_name",
]
