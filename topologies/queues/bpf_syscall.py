"""The few bpf(2) commands kvfabric needs, through ctypes: no bpftool process per read.

Covers map lookup/update, pinning and opening pinned objects, and walking from an attached
program's id to its maps. Layouts follow `union bpf_attr` and `struct bpf_{prog,map}_info` in
include/uapi/linux/bpf.h; only the leading fields we use are declared, which the kernel
accepts (it zero-extends a shorter attr).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

# bpf(2) syscall numbers per architecture (arch/*/include/uapi/asm/unistd*.h).
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15

BPF_ANY = 0
BPF_F_LOCK = 4  # copy a spin-locked value under its lock, so readers see no torn update

BPF_MAP_TYPE_PERCPU_ARRAY = 6

_ATTR_SIZE = 128
_PROG_INFO_SIZE = 80   # up to and including name[16]
_MAP_INFO_SIZE = 40    # up to and including name[16]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    """A bpf(2) command failed; says which command and on what."""


_NR_BPF = _SYS_BPF.get(platform.machine())


def _sys_bpf(cmd: int, attr: ctypes.Array, what: str) -> int:
    if _NR_BPF is None:
        raise BpfError(errno.ENOSYS, f"bpf(2) number unknown for {platform.machine()}")
    ret = _libc.syscall(ctypes.c_long(_NR_BPF), ctypes.c_long(cmd), attr,
                        ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf cmd {cmd} ({what}): {os.strerror(err)}")
    return ret


def _addr(buf: ctypes.Array) -> int:
    return ctypes.addressof(buf)


def possible_cpus() -> int:
    """Per-CPU map values hold one slot per *possible* CPU, not per online one."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


@dataclass(frozen=True)
class MapInfo:
    map_id: int
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


class BpfMap:
    """An open map fd with typed lookup/update on u32 keys (array maps)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.info = map_info(fd)
        self._ncpus = possible_cpus()
        per_cpu = self.info.map_type == BPF_MAP_TYPE_PERCPU_ARRAY
        self._slot = (self.info.value_size + 7) & ~7 if per_cpu else self.info.value_size
        self._value_len = self._slot * self._ncpus if per_cpu else self.info.value_size
        self.per_cpu = per_cpu
        # Reused buffers: reads are the hot path of telemetry.
        self._key = ctypes.c_uint32()
        self._value = ctypes.create_string_buffer(self._value_len)
        self._attr = ctypes.create_string_buffer(_ATTR_SIZE)

    @classmethod
    def from_pin(cls, path: str | os.PathLike) -> BpfMap:
        return cls(obj_get(path))

    def _elem_attr(self, key: int, flags: int) -> ctypes.Array:
        self._key.value = key
        ctypes.memset(self._attr, 0, _ATTR_SIZE)
        struct.pack_into("=IIQQQ", self._attr, 0, self.fd, 0,
                         ctypes.addressof(self._key), _addr(self._value), flags)
        return self._attr

    def lookup(self, key: int, flags: int = 0) -> bytes:
        """Raw value bytes (per-CPU maps: all slots concatenated, `slot_size` apart)."""
        _sys_bpf(BPF_MAP_LOOKUP_ELEM, self._elem_attr(key, flags),
                 f"lookup {self.info.name}[{key}]")
        return self._value.raw

    def lookup_per_cpu(self, key: int) -> list[bytes]:
        raw = self.lookup(key)
        return [raw[i * self._slot:i * self._slot + self.info.value_size]
                for i in range(self._ncpus)]

    def update(self, key: int, value: bytes, flags: int = BPF_ANY) -> None:
        if self.per_cpu:
            if len(value) != self.info.value_size:
                raise ValueError(f"{self.info.name}: value is {len(value)} B, map wants "
                                 f"{self.info.value_size} B")
            value = value.ljust(self._slot, b"\0") * self._ncpus
        elif len(value) != self._value_len:
            raise ValueError(f"{self.info.name}: value is {len(value)} B, map wants "
                             f"{self._value_len} B")
        ctypes.memmove(self._value, value, len(value))
        _sys_bpf(BPF_MAP_UPDATE_ELEM, self._elem_attr(key, flags),
                 f"update {self.info.name}[{key}]")

    def pin(self, path: str | os.PathLike) -> None:
        obj_pin(self.fd, path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def obj_pin(fd: int, path: str | os.PathLike) -> None:
    cpath = ctypes.create_string_buffer(os.fsencode(path))
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=QII", attr, 0, _addr(cpath), fd, 0)
    _sys_bpf(BPF_OBJ_PIN, attr, f"pin {path}")


def obj_get(path: str | os.PathLike) -> int:
    cpath = ctypes.create_string_buffer(os.fsencode(path))
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=QII", attr, 0, _addr(cpath), 0, 0)
    return _sys_bpf(BPF_OBJ_GET, attr, f"open pinned {path}")


def _fd_by_id(cmd: int, obj_id: int, what: str) -> int:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=III", attr, 0, obj_id, 0, 0)
    return _sys_bpf(cmd, attr, f"{what} id {obj_id}")


def prog_fd_by_id(prog_id: int) -> int:
    return _fd_by_id(BPF_PROG_GET_FD_BY_ID, prog_id, "program")


def map_fd_by_id(map_id: int) -> int:
    return _fd_by_id(BPF_MAP_GET_FD_BY_ID, map_id, "map")


def _info(fd: int, info: ctypes.Array, what: str) -> ctypes.Array:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=IIQ", attr, 0, fd, len(info), _addr(info))
    _sys_bpf(BPF_OBJ_GET_INFO_BY_FD, attr, what)
    return info


def map_info(fd: int) -> MapInfo:
    raw = _info(fd, ctypes.create_string_buffer(_MAP_INFO_SIZE), f"map info fd {fd}").raw
    map_type, map_id, key_size, value_size, max_entries, _flags = struct.unpack_from("=6I", raw)
    name = raw[24:40].split(b"\0", 1)[0].decode()
    return MapInfo(map_id, map_type, key_size, value_size, max_entries, name)


def prog_map_ids(prog_fd: int) -> list[int]:
    """Ids of the maps a loaded program uses (two calls: count, then fetch)."""
    info = _info(prog_fd, ctypes.create_string_buffer(_PROG_INFO_SIZE), "prog info")
    nr_map_ids = struct.unpack_from("=I", info.raw, 52)[0]
    ids = (ctypes.c_uint32 * max(nr_map_ids, 1))()
    info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    struct.pack_into("=IQ", info, 52, nr_map_ids, ctypes.addressof(ids))
    _info(prog_fd, info, "prog map ids")
    return list(ids[:nr_map_ids])
