"""Kernel features tested by really using them inside a throwaway network namespace
(``kvfprobe-<pid>``): netns itself, every qdisc kind, and cls_bpf with a compiled program."""

from __future__ import annotations

import errno
import os
import platform
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from ..commands import CommandError, netns_argv, run
from .checks import NOT_PROBED, QDISC_KINDS, Check, qdisc_module
from .host_probes import brief
from .policy import FIXES

PROBE_NETNS_PREFIX = "kvfprobe-"
BPF_PROBE_SOURCE = Path(__file__).resolve().parent.parent / "bpf" / "probe.bpf.c"
BPF_PROBE_SECTION = "tc"
#: Root qdiscs added over netlink; pyroute2 has encoders for these.
_NETLINK_QDISC_PARAMS: dict[str, dict] = {
    "htb": {"default": 0x10},
    "tbf": {"rate": "100mbit", "burst": 32_000, "latency": 50_000},
    "bfifo": {"limit": 100_000},
    "pfifo": {"limit": 100},
    "netem": {"delay": 1_000},
}
#: Root qdiscs added with tc, because pyroute2 cannot encode their options. The RED ramp is the
#: shape kvfabric uses (Kmin < Kmax, Pmax 0.2, ECN marking rather than dropping).
TC_QDISC_SPECS: dict[str, list[str]] = {
    "red": ["red", "limit", "400000", "min", "30000", "max", "90000", "avpkt", "1500",
            "burst", "30", "probability", "0.2", "bandwidth", "100mbit", "ecn"],
    "prio": ["prio", "bands", "3"],
}


def probe_netns_name(pid: int | None = None) -> str:
    return f"{PROBE_NETNS_PREFIX}{os.getpid() if pid is None else pid}"


def _remove_netns(name: str) -> None:
    from pyroute2 import netns
    try:
        netns.remove(name)
    except FileNotFoundError:
        pass


def _remove_stale_probe_netns() -> None:
    """Delete probe namespaces left by a doctor that was killed (its pid no longer exists)."""
    from pyroute2 import netns
    for name in netns.listnetns():
        match = re.fullmatch(rf"{PROBE_NETNS_PREFIX}(\d+)", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _remove_netns(name)


def _add_veth(ipr, name: str) -> int:
    """A veth pair inside the probe namespace; veth is everywhere, dummy often is not."""
    ipr.link("add", ifname=f"{name}0", kind="veth", peer=f"{name}1")
    index = ipr.link_lookup(ifname=f"{name}0")[0]
    ipr.link("set", index=index, state="up")
    return index


def _qdisc_failed(kind: str, unknown_kind: bool, message: str) -> Check:
    if unknown_kind:
        return Check(f"qdisc.{kind}", False, f"kernel has no {qdisc_module(kind)} "
                                             "(qdisc kind unknown)")
    return Check(f"qdisc.{kind}", False, f"add failed: {message}")


def _probe_qdisc_netlink(ipr, kind: str, index: int) -> Check:
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        if kind == "clsact":
            ipr.tc("add", "clsact", index)
        else:
            ipr.tc("add", kind, index, 0x10000, **_NETLINK_QDISC_PARAMS[kind])
    except NetlinkError as exc:
        # The kernel answers ENOENT when no qdisc of that kind is built in or loadable.
        return _qdisc_failed(kind, exc.code == errno.ENOENT, os.strerror(exc.code))
    return Check(f"qdisc.{kind}", True, "accepted by the kernel (netlink)", backend=kind)


def _probe_qdisc_tc(ns: str, kind: str, dev: str) -> Check:
    argv = ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", *TC_QDISC_SPECS[kind]]
    try:
        run(netns_argv(ns, argv), timeout_s=5)
    except CommandError as exc:
        check = _qdisc_failed(kind, "kind is unknown" in exc.stderr, brief(exc.stderr))
        return replace(check, fix="apt install iproute2") if exc.returncode == 127 else check
    return Check(f"qdisc.{kind}", True, "accepted by the kernel (tc)", backend=kind)


def _clang_argv(source: Path, obj: Path) -> list[str]:
    argv = ["clang", "-O2", "-g", "-target", "bpf", "-c", str(source), "-o", str(obj)]
    # Debian keeps asm/types.h under the multiarch directory, which -target bpf does not search.
    multiarch = Path(f"/usr/include/{platform.machine()}-linux-gnu")
    return argv + ([f"-I{multiarch}"] if multiarch.is_dir() else [])


def _probe_cls_bpf(ns: str, dev: str, workdir: Path) -> Check:
    if shutil.which("clang") is None:
        return Check("cls_bpf", False, "clang not found: cannot build the probe program",
                     fix="apt install clang llvm libbpf-dev")
    obj = workdir / "probe.bpf.o"
    try:
        run(_clang_argv(BPF_PROBE_SOURCE, obj), timeout_s=20)
    except CommandError as exc:
        return Check("cls_bpf", False, f"probe.bpf.c does not build: {brief(exc.stderr)}",
                     fix="apt install clang llvm libbpf-dev linux-libc-dev")
    attach = ["tc", "filter", "add", "dev", dev, "egress", "bpf", "direct-action",
              "obj", str(obj), "sec", BPF_PROBE_SECTION]
    try:
        run(netns_argv(ns, attach), timeout_s=5)
        shown = run(netns_argv(ns, ["tc", "filter", "show", "dev", dev, "egress"]),
                    timeout_s=5).stdout
    except CommandError as exc:
        return Check("cls_bpf", False, f"attach failed: {brief(exc.stderr)}")
    jited = " jited" in shown
    return Check("cls_bpf", True,
                 f"probe program attached at clsact egress ({'jited' if jited else 'not jited'})",
                 backend="cls_bpf")


def probe_in_namespace() -> list[Check]:
    """netns, every qdisc kind and cls_bpf, all inside one throwaway namespace."""
    kinds = [f"qdisc.{k}" for k in QDISC_KINDS] + ["cls_bpf"]
    if os.geteuid() != 0:
        return [Check(n, False, f"{NOT_PROBED}: needs root", fix=FIXES["root"])
                for n in ["netns", *kinds]]
    try:
        from pyroute2 import IPRoute
    except ImportError as exc:
        return [Check(n, False, f"{NOT_PROBED}: pyroute2 not importable ({exc})")
                for n in ["netns", *kinds]]
    from pyroute2 import netns
    _remove_stale_probe_netns()
    name = probe_netns_name()
    try:
        try:
            netns.create(name)
        except Exception as exc:  # pyroute2 re-raises the child's error under various classes
            return [Check("netns", False, f"cannot create {name}: {exc}")] + [
                Check(n, False, f"{NOT_PROBED}: no probe namespace") for n in kinds]
        with tempfile.TemporaryDirectory(prefix=PROBE_NETNS_PREFIX) as tmp, \
                IPRoute(netns=name) as ipr:
            checks = _probe_kernel_features(ipr, name, Path(tmp))
    finally:
        # Also after a half-done create. Unmounting drops the last reference: the kernel then
        # destroys the namespace with every veth, qdisc and BPF program the probes put in it.
        _remove_netns(name)
    gone = name not in netns.listnetns()
    return [Check("netns", True, f"created and {'deleted' if gone else 'could not delete'} {name}"),
            *checks]


def _probe_kernel_features(ipr, ns: str, workdir: Path) -> list[Check]:
    checks = []
    for kind in QDISC_KINDS:
        index = _add_veth(ipr, kind)
        if kind in TC_QDISC_SPECS:
            checks.append(_probe_qdisc_tc(ns, kind, f"{kind}0"))
        else:
            checks.append(_probe_qdisc_netlink(ipr, kind, index))
    clsact_ok = next(c.ok for c in checks if c.name == "qdisc.clsact")
    if clsact_ok:  # the clsact probe left clsact on clsact0: attach the program there
        checks.append(_probe_cls_bpf(ns, "clsact0", workdir))
    else:
        checks.append(Check("cls_bpf", False, f"{NOT_PROBED}: needs clsact"))
    return checks
