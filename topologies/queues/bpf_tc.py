"""Plumbing for clsact BPF filters: build an object into a cache, make sure bpffs is mounted,
and the tc argv to add, find and remove a filter (in a netns via `ip netns exec`)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from fabriccore.commands import CommandError, run
from fabriccore.naming import BPF_PIN_DIR


def cache_dir() -> Path:
    """Where compiled objects go: $KVFABRIC_CACHE_DIR, else $XDG_CACHE_HOME/kvfabric/bpf."""
    if os.environ.get("KVFABRIC_CACHE_DIR"):
        return Path(os.environ["KVFABRIC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kvfabric" / "bpf"


@functools.lru_cache(maxsize=4)
def _clang_version(clang: str) -> str:
    return run([clang, "--version"]).stdout.splitlines()[0]


def compile_bpf(source_path: Path, clang: str = "clang", out_dir: Path | None = None) -> Path:
    """Compile a BPF C file once per (source, clang, flags) into the cache; return the
    object path."""
    source = source_path.read_bytes()
    arch_include = f"/usr/include/{platform.machine()}-linux-gnu"
    argv_flags = ["-O2", "-g", "-target", "bpf", f"-I{arch_include}", "-Wall"]
    key = hashlib.sha256(source + _clang_version(clang).encode()
                         + " ".join(argv_flags).encode()).hexdigest()[:16]
    out_dir = out_dir or cache_dir()
    obj = out_dir / f"{source_path.name.split('.')[0]}-{key}.o"
    if obj.exists():
        return obj
    out_dir.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so a concurrent reader never sees half an object.
    tmp = out_dir / f".{obj.name}.{os.getpid()}.tmp"
    try:
        run([clang, *argv_flags, "-c", str(source_path), "-o", str(tmp)], timeout_s=120)
        os.replace(tmp, obj)
    finally:
        tmp.unlink(missing_ok=True)
    return obj


def ensure_bpffs(pin_root: Path = BPF_PIN_DIR) -> None:
    """Mount bpffs at /sys/fs/bpf if the mount covering `pin_root` is not one."""
    best, fstype = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        mnt = fields[1]
        if (str(pin_root) + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best):
            best, fstype = mnt, fields[2]
    if fstype == "bpf":
        return
    if not str(pin_root).startswith("/sys/fs/bpf/"):
        raise RuntimeError(f"{pin_root} is not on a bpf filesystem")
    run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"])


def tc(netns: str | None, args: Sequence[str], check: bool = True):
    """tc with args, in the named namespace (tc's own -n: one process, not two)."""
    return run(["tc", *(["-n", netns] if netns else []), *args], check=check)


def gone(err: CommandError) -> bool:
    """tc errors that mean the thing to remove is already gone with its namespace or device."""
    text = err.stderr.lower()
    return any(s in text for s in ("cannot find device", "cannot open network namespace",
                                   "cannot find specified filter", "not found", "no such file",
                                   "invalid handle"))


def remove_filter(netns: str | None, ifname: str, pref: int,
                  created_clsact: bool) -> list[Exception]:
    """Delete our egress filter, and the clsact qdisc if we added it and nothing else hangs
    off it; return the errors that are not "already gone"."""
    errors: list[Exception] = []
    try:
        tc(netns, ["filter", "del", "dev", ifname, "egress", "pref", str(pref)])
    except CommandError as err:
        if not gone(err):
            errors.append(err)
    if created_clsact:
        try:
            remaining = [f for hook in ("ingress", "egress")
                         for f in filters(netns, ifname, hook)]
            if not remaining:
                tc(netns, ["qdisc", "del", "dev", ifname, "clsact"])
        except CommandError as err:
            if not gone(err):
                errors.append(err)
    return errors


def filters(netns: str | None, ifname: str, hook: str, pref: int | None = None) -> list[dict]:
    args = ["-j", "filter", "show", "dev", ifname, hook]
    if pref is not None:
        args += ["pref", str(pref)]
    out = tc(netns, args).stdout.strip()
    return json.loads(out) if out else []
