"""Network namespaces from inside this process: enter one for a block, write its sysctls, and
create many with one ``ip`` process.

A thread that calls setns(2) moves alone, so a block run "in" a namespace costs two system
calls: sockets opened there stay bound to it (netlink, ioctl), and /proc/sys/net, which the
kernel resolves by the opening thread's namespace, shows that namespace's sysctls. This is
what bring-up uses instead of a process per namespace (``ip netns exec``, or pyroute2's
forked helper), which is where a large fabric spent its time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterable, Iterator, Mapping

from fabriccore.commands import run

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_namespace(netns: str | None) -> Iterator[None]:
    """Run the block with this thread in /run/netns/<netns> (None: stay where we are)."""
    if netns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"{NETNS_DIR}/{netns}", os.O_RDONLY)
    except BaseException:
        os.close(home)
        raise
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def write_sysctls(netns: str | None, values: Mapping[str, str | int]) -> None:
    """Set net.* sysctls (dotted names) in a namespace, as ``sysctl -w`` would there."""
    with in_namespace(netns):
        for name, value in values.items():
            if not name.startswith("net."):
                raise ValueError(f"only per-namespace net.* sysctls, got {name!r}")
            path = "/proc/sys/" + name.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(f"{value}\n")
            except OSError as exc:
                raise OSError(exc.errno, f"sysctl {name}={value} in {netns or 'root'}: "
                              f"{exc.strerror}") from exc


def create_namespaces(names: Iterable[str]) -> None:
    """``ip netns add`` for each name, in one ``ip`` process (it stops at the first failure;
    the caller deletes what it meant to create, whether it exists or not)."""
    lines = "".join(f"netns add {name}\n" for name in names)
    if lines:
        run(["ip", "-batch", "-"], input_text=lines, timeout_s=60.0)
