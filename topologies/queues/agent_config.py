"""The queue agent's configuration: every port it serves and the classes of each, as the
fabric writes it to JSON and the agent process reads it back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class ClassConfig:
    name: str
    index: int
    priority: int
    lossless: bool
    pausable: bool
    classid: int
    leaf: int
    limit_bytes: int
    xoff_bytes: int = 0      # 0: this port sends no PAUSE for the class
    xon_bytes: int = 0


@dataclass
class PortConfig:
    port_id: str            # "<node>:<ifname>"
    node: str
    role: str               # host | leaf | spine | switch
    netns: str | None
    ifname: str
    ifindex: int
    mac: str
    peer: str
    rate_bps: int
    mtu: int
    classes: list[ClassConfig] = field(default_factory=list)


@dataclass
class AgentConfig:
    out_dir: str
    ports: list[PortConfig]
    pfc: bool = True
    telemetry: bool = True
    sweep_s: float = 0.0005
    realtime: bool = True    # SCHED_FIFO; off where a userspace datapath needs the CPU

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        raw = json.loads(text)
        ports = [PortConfig(**{**p, "classes": [ClassConfig(**c) for c in p["classes"]]})
                 for p in raw.pop("ports")]
        return cls(ports=ports, **raw)
