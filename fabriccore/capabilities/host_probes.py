"""Probes of the host outside any namespace: privileges, Python and its packages, tools,
the BPF JIT and bpffs, Open vSwitch and its datapath, TCP congestion control. Each returns
Checks with ok/detail (and a fix when it knows a better one)."""

from __future__ import annotations

import errno
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import socket
import sys
from dataclasses import replace
from pathlib import Path

from ..commands import CommandError, run
from .checks import TCP_CCS, Check

_VERSION_RE = re.compile(r"\d+\.\d+(?:\.\d+)?")
_TOOL_TIMEOUT_S = 2.5


def brief(text: str, limit: int = 100) -> str:
    """The most telling line of a tool's error output: tc and libbpf put the verdict last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error")]
    line = (errors or lines or ["no output"])[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def probe_root() -> Check:
    euid = os.geteuid()
    return Check("root", euid == 0, "euid 0" if euid == 0 else f"euid {euid}")


def probe_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok,
                 f"{platform.python_implementation()} {platform.python_version()} (needs >= 3.10)")


def modules_loadable() -> bool:
    """Whether this kernel can load modules at all (many VM and container kernels cannot)."""
    return Path("/proc/modules").exists() and Path(f"/lib/modules/{platform.release()}").is_dir()


def probe_kernel(loadable: bool) -> Check:
    modules = "loadable modules" if loadable else "no loadable modules"
    return Check("kernel", True, f"{platform.system()} {platform.release()} "
                                 f"{platform.machine()}, {modules}")


def probe_py_dep(name: str, module: str, dist: str) -> Check:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install raises more than ImportError
        return Check(name, False, f"import {module} failed: {exc}")
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "unknown version")
    return Check(name, True, f"{module} {version}")


def probe_openflow_lib() -> Check:
    """os-ken is what kvfabric's controller apps target; Ryu, its parent, runs them too."""
    os_ken = probe_py_dep("py.openflow", "os_ken", "os-ken")
    if os_ken.ok:
        return replace(os_ken, backend="os-ken")
    ryu = probe_py_dep("py.openflow", "ryu", "ryu")
    if ryu.ok:
        return replace(ryu, backend="ryu", detail=f"os-ken missing; {ryu.detail}")
    return replace(os_ken, detail="neither os_ken nor ryu importable")


def probe_tool(name: str, argv: list[str]) -> Check:
    path = shutil.which(argv[0])
    if path is None:
        return Check(f"tool.{name}", False, f"{argv[0]} not found on PATH")
    try:
        proc = run(argv, check=False, timeout_s=_TOOL_TIMEOUT_S)
    except CommandError:
        return Check(f"tool.{name}", True, f"{path} (version query timed out)")
    output = f"{proc.stdout}\n{proc.stderr}"
    match = _VERSION_RE.search(output)
    detail = f"{match.group(0) if match else 'unknown version'} ({path})"
    libbpf = re.search(r"libbpf (\S+)", output)
    if libbpf:  # tc only loads BTF-style objects when built with libbpf
        detail += f", libbpf {libbpf.group(1)}"
    return Check(f"tool.{name}", True, detail)


def probe_mnexec() -> Check:
    path = shutil.which("mnexec")
    return Check("mnexec", path is not None, path or "mnexec not found on PATH")


def probe_tcp_ccs() -> list[Check]:
    try:
        listed = Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()
    except OSError:
        listed = []
    return [_probe_tcp_cc(cc, listed) for cc in TCP_CCS]


def _probe_tcp_cc(cc: str, listed: list[str]) -> Check:
    if cc in listed:
        return Check(f"tcp.{cc}", True, "available")
    # Only loaded algorithms are listed; as root, selecting one on a socket loads its module,
    # exactly what iperf3 -C would do later.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        except OSError as exc:
            reason = "no such algorithm" if exc.errno == errno.ENOENT else os.strerror(exc.errno)
            return Check(f"tcp.{cc}", False, f"not available ({reason})")
    return Check(f"tcp.{cc}", True, f"tcp_{cc} loaded on demand")


def probe_bpf_jit() -> Check:
    try:
        value = Path("/proc/sys/net/core/bpf_jit_enable").read_text().strip()
    except OSError:
        return Check("bpf_jit", False, "kernel built without a BPF JIT",
                     fix="kernel with CONFIG_BPF_JIT")
    return Check("bpf_jit", value in ("1", "2"), f"net.core.bpf_jit_enable = {value}")


def probe_bpffs() -> Check:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    points = [fields[1] for fields in (ln.split() for ln in mounts)
              if len(fields) > 2 and fields[2] == "bpf"]
    if points:
        return Check("bpffs", True, f"mounted at {', '.join(points)}")
    return Check("bpffs", False, "no bpf filesystem mounted (pinned maps unavailable)")


def probe_ovs() -> Check:
    if shutil.which("ovs-vsctl") is None:
        return Check("ovs", False, "ovs-vsctl not found on PATH")
    try:
        run(["ovs-vsctl", "--timeout=5", "show"], timeout_s=6)
    except CommandError as exc:
        return Check("ovs", False, f"ovsdb-server not answering: {brief(exc.stderr)}",
                     fix="systemctl start openvswitch-switch")
    try:
        version = run(["ovs-appctl", "--timeout=5", "version"], timeout_s=6).stdout
    except CommandError as exc:
        return Check("ovs", False, f"ovsdb answers but ovs-vswitchd does not: {brief(exc.stderr)}",
                     fix="systemctl restart openvswitch-switch")
    match = _VERSION_RE.search(version)
    return Check("ovs", True, f"ovs-vswitchd {match.group(0) if match else '?'} running")


def probe_ovs_datapath() -> Check:
    if Path("/sys/module/openvswitch").exists():
        return Check("ovs.datapath", True, "openvswitch kernel module loaded", backend="system")
    # A built-in datapath has no /sys/module entry; its generic netlink family is the proof.
    # Asking for the family lets the kernel autoload openvswitch.ko, as ovs-vswitchd would.
    try:
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.generic import GenericNetlinkSocket
    except ImportError:
        return Check("ovs.datapath", False, "no /sys/module/openvswitch (pyroute2 missing)")
    sock = GenericNetlinkSocket()
    try:
        sock.discovery("ovs_datapath")
    except NetlinkError:
        return Check("ovs.datapath", False, "no openvswitch kernel module")
    finally:
        sock.close()
    return Check("ovs.datapath", True, "kernel datapath (ovs_datapath family)", backend="system")

