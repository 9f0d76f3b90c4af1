"""Probe what this host can emulate and pick, for every missing piece, the backend that replaces it.

Every kernel feature is tested by really using it inside a throwaway network namespace
(``kvfprobe-<pid>``): a qdisc counts as present only if the kernel accepted it, cls_bpf only if a
compiled program was attached. Nothing in the root namespace is touched, and the namespace and the
temporary build directory are removed even when a probe fails.
"""

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
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .commands import CommandError, netns_argv, run

PROBE_NETNS_PREFIX = "kvfprobe-"
BPF_PROBE_SOURCE = Path(__file__).resolve().parent / "bpf" / "probe.bpf.c"
BPF_PROBE_SECTION = "tc"
SCHEMA_VERSION = 1

OK, MISSING, FALLBACK = "OK", "MISSING", "FALLBACK"

#: Without these kvfabric cannot build a fabric at all; everything else has a fallback.
MINIMUM = ("root", "netns", "qdisc.htb", "qdisc.bfifo", "qdisc.clsact", "python")
PY_DEPS_REQUIRED = ("py.pyroute2", "py.scapy", "py.numpy", "py.matplotlib", "py.mininet",
                    "py.openflow")
REQUIRED = frozenset(MINIMUM + PY_DEPS_REQUIRED)

#: Kernel module and Kconfig symbol behind each qdisc kind (clsact lives in sch_ingress).
_QDISC_MODULE = {"clsact": "sch_ingress"}
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
QDISC_KINDS = ("htb", "tbf", "bfifo", "pfifo", "red", "netem", "prio", "clsact")

#: name -> (version argv, apt package that provides it)
_TOOLS: dict[str, tuple[list[str], str]] = {
    "iperf3": (["iperf3", "--version"], "iperf3"),
    "tshark": (["tshark", "--version"], "tshark"),
    "tcpdump": (["tcpdump", "--version"], "tcpdump"),
    "tcpreplay": (["tcpreplay", "--version"], "tcpreplay"),
    "ethtool": (["ethtool", "--version"], "ethtool"),
    "clang": (["clang", "--version"], "clang llvm libbpf-dev"),
    "tc": (["tc", "-V"], "iproute2"),
}
#: check name -> (import name, distribution name) of the Python packages kvfabric imports.
_PY_DEPS = {
    "py.pyroute2": ("pyroute2", "pyroute2"),
    "py.scapy": ("scapy", "scapy"),
    "py.numpy": ("numpy", "numpy"),
    "py.matplotlib": ("matplotlib", "matplotlib"),
    "py.mininet": ("mininet", "mininet"),
}
TCP_CCS = ("cubic", "bbr", "dctcp")

ECN_EBPF_FALLBACK = (
    "ECN marking by an eBPF virtual-queue marker at clsact egress: marks on the same "
    "Kmin/Kmax/Pmax ramp but against a virtual queue drained at the class rate, not the "
    "qdisc's real backlog")
OVS_USER_FALLBACK = (
    "OVS datapath=user (ovs-vswitchd netdev): lower throughput, tx checksum offload must be "
    "off on veths")

#: Detail prefix of a check that could not run; it gets no fallback, since nothing is known.
NOT_PROBED = "not probed"

_VERSION_RE = re.compile(r"\d+\.\d+(?:\.\d+)?")
_TOOL_TIMEOUT_S = 2.5


@dataclass(frozen=True)
class Check:
    """One probed capability; `backend` names what kvfabric uses for it (the real thing or a
    stand-in), `fallback` says what a stand-in costs, `fix` how to get the real thing."""

    name: str
    ok: bool
    detail: str
    backend: str | None = None
    fallback: str | None = None
    fix: str | None = None
    required: bool = False

    @property
    def status(self) -> str:
        if self.ok:
            return OK
        return FALLBACK if self.fallback and not self.required else MISSING


@dataclass
class HostReport:
    checks: list[Check]
    backends: dict[str, str]
    duration_s: float = 0.0
    kernel_release: str = field(default_factory=platform.release)
    python_version: str = field(default_factory=platform.python_version)

    @property
    def minimum_ok(self) -> bool:
        """True when every required check passed: kvfabric can build a fabric here."""
        return not self.missing_required()

    def missing_required(self) -> list[Check]:
        return [c for c in self.checks if c.required and not c.ok]

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        """JSON-able form, stored in each run's env.json."""
        return {
            "schema": SCHEMA_VERSION,
            "minimum_ok": self.minimum_ok,
            "kernel_release": self.kernel_release,
            "python_version": self.python_version,
            "probe_duration_s": round(self.duration_s, 3),
            "backends": dict(self.backends),
            "checks": {c.name: {**asdict(c), "status": c.status} for c in self.checks},
        }


# ---------------------------------------------------------------------------------------------
# Pure policy: what replaces what, and which backends follow. Unit-tested with fabricated checks.
# ---------------------------------------------------------------------------------------------

def _qdisc_module(kind: str) -> str:
    return _QDISC_MODULE.get(kind, f"sch_{kind}")


#: check name -> (kernel module, Kconfig symbol) for pieces a kernel module provides.
_KERNEL_MODULES: dict[str, tuple[str, str]] = {
    **{f"qdisc.{k}": (_qdisc_module(k), f"CONFIG_NET_SCH_{_qdisc_module(k)[4:].upper()}")
       for k in QDISC_KINDS},
    "cls_bpf": ("cls_bpf", "CONFIG_NET_CLS_BPF"),
    "ovs.datapath": ("openvswitch", "CONFIG_OPENVSWITCH"),
    **{f"tcp.{cc}": (f"tcp_{cc}", f"CONFIG_TCP_CONG_{cc.upper()}") for cc in TCP_CCS},
}

_FIXES: dict[str, str] = {
    "root": "run as root: sudo .venv/bin/kvfabric doctor",
    "netns": "needs CONFIG_NET_NS and CAP_SYS_ADMIN (in a container: run it --privileged)",
    "bpf_jit": "sysctl -w net.core.bpf_jit_enable=1",
    "bpffs": "mount -t bpf bpf /sys/fs/bpf",
    "ovs": "apt install openvswitch-switch && systemctl start openvswitch-switch",
    "mnexec": "apt install mininet",
    "python": "use Python >= 3.10",
    "py.openflow": ".venv/bin/pip install os-ken",
    **{f"tool.{name}": f"apt install {pkg}" for name, (_, pkg) in _TOOLS.items()},
    **{name: f".venv/bin/pip install {dist}" for name, (_, dist) in _PY_DEPS.items()},
}


def fix_for(name: str, modules_loadable: bool = True) -> str | None:
    """How to get the real `name`; for kernel pieces, modprobe only where modules can load."""
    if name not in _KERNEL_MODULES:
        return _FIXES.get(name)
    module, kconfig = _KERNEL_MODULES[name]
    if modules_loadable:
        return f"modprobe {module} ({kconfig}; a module in stock distro kernels)"
    return f"boot a kernel built with {kconfig}=y (this kernel cannot load modules)"


def _fallback(name: str, ok: Mapping[str, bool]) -> tuple[str | None, str | None]:
    """(backend, fidelity cost) that stands in for the missing `name`; (None, None) if nothing
    does. `ok` maps every check name to its result, because some stand-ins need other checks."""
    if name == "qdisc.red":
        return ("ebpf", ECN_EBPF_FALLBACK) if ok.get("cls_bpf") else (None, None)
    if name == "cls_bpf":
        # The eBPF marker is only needed when sch_red is missing.
        if ok.get("qdisc.red"):
            return "red", "ECN marking by sch_red on the real backlog; no eBPF programs"
        return None, None
    if name == "qdisc.netem":
        return "none", "link delay not emulated; propagation delay is the veth's (~µs)"
    if name == "qdisc.prio":
        return "htb", ("strict priority from HTB class prio: a higher class is served first only "
                       "for bandwidth beyond each class's guaranteed rate")
    if name == "qdisc.tbf":
        return "htb", "shaping by a single HTB class (rate = ceil) instead of a token bucket"
    if name == "qdisc.pfifo":
        return "bfifo", "queue limits counted in bytes (bfifo), not packets"
    if name == "bpf_jit":
        return "interpreter", "BPF programs run in the interpreter: more CPU per marked packet"
    if name == "ovs.datapath":
        return ("user", OVS_USER_FALLBACK) if ok.get("ovs") else (None, None)
    if name.startswith("tcp."):
        others = [cc for cc in TCP_CCS if ok.get(f"tcp.{cc}") and f"tcp.{cc}" != name]
        if others:
            return None, f"TCP baselines use {'/'.join(others)} only"
    return None, None


def _not_probed(check: Check) -> bool:
    return check.detail.startswith(NOT_PROBED)


def annotate(checks: list[Check], modules_loadable: bool = True) -> list[Check]:
    """Mark required checks and fill in fallback and fix for every failed one."""
    ok = {c.name: c.ok for c in checks}
    annotated = []
    for check in checks:
        check = replace(check, required=check.name in REQUIRED)
        if not check.ok:
            backend, cost = (None, None) if _not_probed(check) else _fallback(check.name, ok)
            check = replace(check, backend=check.backend or backend,
                            fallback=check.fallback or cost,
                            fix=check.fix or fix_for(check.name, modules_loadable))
        annotated.append(check)
    return annotated


def choose_backends(checks: list[Check]) -> dict[str, str]:
    """The implementation kvfabric will use for each function that has more than one."""
    ok = {c.name: c.ok for c in checks}
    if ok.get("qdisc.red"):
        ecn = "red"
    elif ok.get("cls_bpf"):
        ecn = "ebpf"
    else:
        ecn = "none"
    if not ok.get("ovs"):
        ovs_datapath = "none"
    else:
        ovs_datapath = "system" if ok.get("ovs.datapath") else "user"
    return {
        "ecn_marking": ecn,
        "ovs_datapath": ovs_datapath,
        "delay": "netem" if ok.get("qdisc.netem") else "none",
        "strict_priority": "prio" if ok.get("qdisc.prio") else "htb",
    }


# ---------------------------------------------------------------------------------------------
# Probes. Each returns Checks with ok/detail (and a fix when it knows a better one).
# ---------------------------------------------------------------------------------------------

def _brief(text: str, limit: int = 100) -> str:
    """The most telling line of a tool's error output: tc and libbpf put the verdict last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error")]
    line = (errors or lines or ["no output"])[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _probe_root() -> Check:
    euid = os.geteuid()
    return Check("root", euid == 0, "euid 0" if euid == 0 else f"euid {euid}")


def _probe_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok,
                 f"{platform.python_implementation()} {platform.python_version()} (needs >= 3.10)")


def modules_loadable() -> bool:
    """Whether this kernel can load modules at all (many VM and container kernels cannot)."""
    return Path("/proc/modules").exists() and Path(f"/lib/modules/{platform.release()}").is_dir()


def _probe_kernel(loadable: bool) -> Check:
    modules = "loadable modules" if loadable else "no loadable modules"
    return Check("kernel", True, f"{platform.system()} {platform.release()} "
                                 f"{platform.machine()}, {modules}")


def _probe_py_dep(name: str, module: str, dist: str) -> Check:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install raises more than ImportError
        return Check(name, False, f"import {module} failed: {exc}")
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "unknown version")
    return Check(name, True, f"{module} {version}")


def _probe_openflow_lib() -> Check:
    """os-ken is what kvfabric's controller apps target; Ryu, its parent, runs them too."""
    os_ken = _probe_py_dep("py.openflow", "os_ken", "os-ken")
    if os_ken.ok:
        return replace(os_ken, backend="os-ken")
    ryu = _probe_py_dep("py.openflow", "ryu", "ryu")
    if ryu.ok:
        return replace(ryu, backend="ryu", detail=f"os-ken missing; {ryu.detail}")
    return replace(os_ken, detail="neither os_ken nor ryu importable")


def _probe_tool(name: str, argv: list[str]) -> Check:
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


def _probe_mnexec() -> Check:
    path = shutil.which("mnexec")
    return Check("mnexec", path is not None, path or "mnexec not found on PATH")


def _probe_tcp_ccs() -> list[Check]:
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


def _probe_bpf_jit() -> Check:
    try:
        value = Path("/proc/sys/net/core/bpf_jit_enable").read_text().strip()
    except OSError:
        return Check("bpf_jit", False, "kernel built without a BPF JIT",
                     fix="kernel with CONFIG_BPF_JIT")
    return Check("bpf_jit", value in ("1", "2"), f"net.core.bpf_jit_enable = {value}")


def _probe_bpffs() -> Check:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    points = [fields[1] for fields in (ln.split() for ln in mounts)
              if len(fields) > 2 and fields[2] == "bpf"]
    if points:
        return Check("bpffs", True, f"mounted at {', '.join(points)}")
    return Check("bpffs", False, "no bpf filesystem mounted (pinned maps unavailable)")


def _probe_ovs() -> Check:
    if shutil.which("ovs-vsctl") is None:
        return Check("ovs", False, "ovs-vsctl not found on PATH")
    try:
        run(["ovs-vsctl", "--timeout=5", "show"], timeout_s=6)
    except CommandError as exc:
        return Check("ovs", False, f"ovsdb-server not answering: {_brief(exc.stderr)}",
                     fix="systemctl start openvswitch-switch")
    try:
        version = run(["ovs-appctl", "--timeout=5", "version"], timeout_s=6).stdout
    except CommandError as exc:
        return Check("ovs", False, f"ovsdb answers but ovs-vswitchd does not: {_brief(exc.stderr)}",
                     fix="systemctl restart openvswitch-switch")
    match = _VERSION_RE.search(version)
    return Check("ovs", True, f"ovs-vswitchd {match.group(0) if match else '?'} running")


def _probe_ovs_datapath() -> Check:
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


# --- the probe namespace ---------------------------------------------------------------------

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
        return Check(f"qdisc.{kind}", False, f"kernel has no {_qdisc_module(kind)} "
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
        check = _qdisc_failed(kind, "kind is unknown" in exc.stderr, _brief(exc.stderr))
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
        return Check("cls_bpf", False, f"probe.bpf.c does not build: {_brief(exc.stderr)}",
                     fix="apt install clang llvm libbpf-dev linux-libc-dev")
    attach = ["tc", "filter", "add", "dev", dev, "egress", "bpf", "direct-action",
              "obj", str(obj), "sec", BPF_PROBE_SECTION]
    try:
        run(netns_argv(ns, attach), timeout_s=5)
        shown = run(netns_argv(ns, ["tc", "filter", "show", "dev", dev, "egress"]),
                    timeout_s=5).stdout
    except CommandError as exc:
        return Check("cls_bpf", False, f"attach failed: {_brief(exc.stderr)}")
    jited = " jited" in shown
    return Check("cls_bpf", True,
                 f"probe program attached at clsact egress ({'jited' if jited else 'not jited'})",
                 backend="cls_bpf")


def _probe_in_namespace() -> list[Check]:
    """netns, every qdisc kind and cls_bpf, all inside one throwaway namespace."""
    kinds = [f"qdisc.{k}" for k in QDISC_KINDS] + ["cls_bpf"]
    if os.geteuid() != 0:
        return [Check(n, False, f"{NOT_PROBED}: needs root", fix=_FIXES["root"])
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


def _guarded(names: list[str], probe: Callable[[], list[Check]]) -> list[Check]:
    """Run a probe group; a bug in one group becomes failed checks, not a doctor crash."""
    try:
        return probe()
    except Exception as exc:
        return [Check(n, False, f"{NOT_PROBED}: probe error {type(exc).__name__}: {exc}")
                for n in names]


def probe_host() -> HostReport:
    """Probe this host (about a second) and return what it can do and what kvfabric will use."""
    started = time.monotonic()
    loadable = modules_loadable()
    checks = [_probe_root(), _probe_kernel(loadable), _probe_python()]
    # pyroute2 forks to enter the namespace, so this runs before any thread exists.
    checks += _guarded(["netns", *(f"qdisc.{k}" for k in QDISC_KINDS), "cls_bpf"],
                       _probe_in_namespace)
    with ThreadPoolExecutor(max_workers=len(_TOOLS) + 1) as pool:
        # Subprocess-bound probes (tshark alone takes ~0.3 s) overlap the Python imports.
        tool_futures: list[Future] = [pool.submit(_probe_tool, name, argv)
                                      for name, (argv, _) in _TOOLS.items()]
        ovs_future = pool.submit(_probe_ovs)
        checks += [_probe_bpf_jit(), _probe_bpffs()]
        checks += [_probe_py_dep(name, module, dist) for name, (module, dist) in _PY_DEPS.items()]
        checks.append(_probe_openflow_lib())
        datapath = _guarded(["ovs.datapath"], lambda: [_probe_ovs_datapath()])
        checks += _guarded(["ovs"], lambda: [ovs_future.result()]) + datapath
        checks += [f.result() for f in tool_futures]
    checks.append(_probe_mnexec())
    checks += _guarded([f"tcp.{cc}" for cc in TCP_CCS], _probe_tcp_ccs)
    checks = annotate(checks, modules_loadable=loadable)
    return HostReport(checks=checks, backends=choose_backends(checks),
                      duration_s=time.monotonic() - started)
