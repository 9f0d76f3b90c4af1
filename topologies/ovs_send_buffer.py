"""Give userspace OVS a send buffer big enough for kvfabric's port queues, and put it back.

ovs-vswitchd's netdev datapath (datapath_type=netdev) transmits on every "system" port
through ONE AF_PACKET socket. A frame is charged to that socket until the port's qdisc has
sent it, so once the frames queued on all ports together pass the socket's send buffer
(net.core.wmem_default, 208 KiB), every later transmission fails and OVS silently drops it,
on every port at once. With kvfabric's egress queues (a lossless class holds hundreds of KB
under PFC) that collapsed an uncongested victim flow to 1 % of its rate (measured).

We raise that one socket's buffer with SO_SNDBUFFORCE through a duplicate of OVS's file
descriptor (pidfd_getfd, Linux 5.6+), and restore the old value at teardown. The value to
restore is also kept in /run/kvfabric/ovs-sndbuf.json so `kvfabric clean` can put it back
after a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
from pathlib import Path

from fabriccore.naming import LOCK_PATH

SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438
SO_SNDBUFFORCE = 32
OVS_PIDFILE = Path("/run/openvswitch/ovs-vswitchd.pid")
STATE_FILE = LOCK_PATH.parent / "ovs-sndbuf.json"
#: What we ask for (the kernel doubles it for bookkeeping overhead).
SEND_BUFFER_BYTES = 8 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def _ovs_pid() -> int | None:
    try:
        return int(OVS_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None


def _unbound_packet_socket_fds(pid: int) -> list[int]:
    """OVS's fds that are AF_PACKET sockets bound to no interface and no protocol."""
    unbound = set()
    with open("/proc/net/packet") as f:
        next(f)
        for line in f:
            fields = line.split()  # sk RefCnt Type Proto Iface R Rmem User Inode
            if fields[3] == "0000" and fields[4] == "0":
                unbound.add(int(fields[8]))
    fds = []
    for entry in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{entry}")
            if link.startswith("socket:[") and int(link[8:-1]) in unbound:
                fds.append(int(entry))
    return fds


@contextlib.contextmanager
def _ovs_socket(pid: int, fd: int):
    pidfd = _libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_open")
    try:
        local = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if local < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        sock = socket.socket(fileno=local)
        try:
            yield sock
        finally:
            sock.close()  # our duplicate only; OVS's descriptor is untouched
    finally:
        os.close(pidfd)


def raise_send_buffer(size: int = SEND_BUFFER_BYTES) -> dict | None:
    """Raise OVS's transmit socket buffer; returns what `restore` needs, or None when OVS
    is not running or the socket cannot be found (then nothing was changed)."""
    pid = _ovs_pid()
    if pid is None:
        return None
    changed = []
    try:
        for fd in _unbound_packet_socket_fds(pid):
            with _ovs_socket(pid, fd) as sock:
                before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                if before >= 2 * size:
                    continue
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size)
                changed.append({"fd": fd, "sndbuf": before})
    except OSError:
        pass  # an older kernel or a restricted container: run without, as before
    if not changed:
        return None
    state = {"pid": pid, "sockets": changed}
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state))
    return state


def restore(state: dict | None = None) -> bool:
    """Put OVS's send buffer back (from `state`, or the state file after a crash)."""
    if state is None:
        try:
            state = json.loads(STATE_FILE.read_text())
        except (OSError, ValueError):
            return False
    restored = False
    if state.get("pid") == _ovs_pid():  # a restarted OVS has fresh sockets already
        for entry in state["sockets"]:
            with contextlib.suppress(OSError), _ovs_socket(state["pid"], entry["fd"]) as sock:
                # getsockopt reports twice what was set; set half to get it back.
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, entry["sndbuf"] // 2)
                restored = True
    STATE_FILE.unlink(missing_ok=True)
    return restored
