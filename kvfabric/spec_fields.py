"""The fields of a spec's [experiment], [fabric] and [queues] sections, and of each shape.

Each workload kind declares its own [workload] fields (``kvfabric.workloads``). A new section's
field list added here as ``<SECTION>_FIELDS`` appears in docs/spec-reference.md when it is
regenerated (kvfabric/specdoc.py).
"""

from __future__ import annotations

from wire.dscp import DEFAULT_DSCP_MAP

from .schema import Field

EXPERIMENT_FIELDS = [
    Field("name", "name", None, "experiment name; the results folder is named after it"),
    Field("description", "str", "", "one line shown by `kvfabric list`"),
    Field("seed", "int", 1, "seed for every random choice of the run", minimum=0),
]


FABRIC_FIELDS = [
    Field("topology", "choice", "leafspine", "fabric shape",
          choices=("leafspine", "star", "dumbbell")),
    Field("mode", "choice", "l3", "l3: Linux routers with kernel ECMP; openflow: OVS switches",
          choices=("l3", "openflow")),
    Field("spines", "int", 2, "spine switches (leafspine)", minimum=1, maximum=16),
    Field("leaves", "int", 2, "leaf switches (leafspine)", minimum=1, maximum=64),
    Field("hosts_per_leaf", "int", 4, "hosts on each leaf (leafspine)", minimum=1, maximum=64),
    Field("hosts", "int", 8, "hosts on the switch (star)", minimum=2, maximum=128),
    Field("hosts_per_side", "int", 4, "hosts on each side (dumbbell)", minimum=1,
          maximum=64),
    Field("target_rate", "rate", "25G", "link rate of the fabric under study (host links, "
          "and leaf-to-spine links unless target_fabric_rate is set)", minimum=1e5,
          maximum=1.6e12),
    Field("target_fabric_rate", "rate", 0, "leaf-to-spine link rate of the fabric under "
          "study; 0 = target_rate", minimum=0, maximum=1.6e12),
    Field("dilation", "float", 0.0, "time dilation D: the emulation runs D times slower "
          "(rates / D, durations x D, bytes unchanged); 0 = the fastest target rate / "
          "100 Mbit/s, at least 1", minimum=0, maximum=1e6),
    Field("link_delay", "duration", "1us", "propagation delay of every link of the fabric "
          "under study (HPCC's topologies: 1us); sizes the derived PFC headroom and the "
          "simulator's links; not added on the emulated links (no netem path), each run "
          "says so", minimum=0, maximum=0.01),
    Field("buffer", "size", "64KiB", "egress buffer of every port", minimum=1, maximum=1 << 30),
    Field("mtu", "int", 1500, "IP MTU of every link", minimum=576, maximum=9000),
    Field("ovs_datapath", "choice", "auto", "openflow mode: OVS datapath",
          choices=("auto", "user", "system")),
    Field("controller", "choice", "static", "openflow mode: static (ovs-ofctl rules), ecmp "
          "or adaptive (an os-ken controller app, see controllers/)",
          choices=("static", "ecmp", "adaptive")),
    Field("stats_interval", "duration", "10ms", "adaptive controller: port stats poll period",
          minimum=0.001, maximum=10),
    Field("tenant_meters", "bool", False, "police each tenant to an equal share of every "
          "leaf's uplink capacity with OpenFlow meters (performance isolation)"),
    Field("tenant_meter_burst", "size", "128KiB", "burst size of the tenant meters",
          minimum=1500, maximum=1 << 30),
]


#: Traffic classes on every port (see docs/queues.md), in target terms. Sizes of 0 are derived
#: from the port's target rate: the ECN ramp is HPCC's (Kmin 100 KB, Kmax 400 KB, Pmax 0.2 at
#: 25 Gbit/s, scaled by rate/25G as HPCC's run.py does) floored at a few frames; XOFF = 2 x
#: Kmax; XON = XOFF - max(3 KB, 2 MTU) (HPCC's resume offset); headroom = ingress ports x rate
#: x (pfc_reaction + 2 x fabric.link_delay) + 2 frames.
QUEUE_FIELDS = [
    Field("enabled", "bool", True, "traffic classes on every port; false: one FIFO per port"),
    Field("pfc", "bool", True, "PFC pause/resume for the lossless class"),
    Field("ecn", "bool", True, "ECN marking on the lossless class's ramp"),
    Field("ecn_backend", "choice", "auto", "auto: kernel red where present, else eBPF",
          choices=("auto", "red", "ebpf")),
    Field("lossy_ecn", "bool", False, "also mark ECT packets of the lossy class (TCP ECN)"),
    Field("lossless_dscp", "int", DEFAULT_DSCP_MAP.lossless_dscp, "DSCP of the lossless class "
          "(RoCEv2 data and ACKs; every RoCE endpoint sends with it)", minimum=0, maximum=63),
    Field("cnp_dscp", "int", DEFAULT_DSCP_MAP.cnp_dscp, "DSCP of the strict-priority CNP class "
          "(the RoCE responders' CNPs)", minimum=0, maximum=63),
    Field("lossless_priority", "int", DEFAULT_DSCP_MAP.lossless_priority,
          "802.1p priority of the lossless class (PFC frames)", minimum=1, maximum=7),
    Field("cnp_priority", "int", DEFAULT_DSCP_MAP.cnp_priority,
          "802.1p priority of the CNP class", minimum=1, maximum=7),
    Field("kmin", "size", 0, "ECN ramp start; 0 = HPCC's 100 KB at 25G, scaled by target "
          "rate/25G",
          minimum=0, maximum=1 << 30),
    Field("kmax", "size", 0, "ECN ramp end (mark all above); 0 = HPCC's 400 KB scaled",
          minimum=0, maximum=1 << 30),
    Field("pmax", "float", 0.2, "marking probability at Kmax", minimum=0.001, maximum=1.0),
    Field("xoff", "size", 0, "PFC pause threshold; 0 = 2 x Kmax", minimum=0,
          maximum=1 << 30),
    Field("xon", "size", 0, "PFC resume threshold; 0 = XOFF - max(3 KB, 2 MTU)", minimum=0,
          maximum=1 << 30),
    Field("headroom", "size", 0, "buffer above XOFF for bytes in flight while pausing; "
          "0 = ingress ports x rate x (pfc_reaction + 2 x fabric.link_delay) + 2 frames",
          minimum=0, maximum=1 << 30),
    Field("lossless_buffer", "size", 0, "lossless class buffer; 0 = XOFF + headroom",
          minimum=0, maximum=1 << 30),
    Field("lossless_weight", "int", 3, "lossless class share against the lossy class",
          minimum=1, maximum=100),
    Field("lossy_weight", "int", 1, "lossy class share", minimum=1, maximum=100),
    Field("pfc_reaction", "duration", 0, "time the headroom must cover from XOFF to the "
          "peer stopping; 0 = the queue agent's worst case here, 50 ms of wall time "
          "(50 ms / D in target terms)", minimum=0, maximum=10),
    Field("telemetry", "bool", True, "100 us queue-depth/mark bins on every port"),
]


#: The fields that set a topology's size.
SHAPE_FIELDS = {"leafspine": ("spines", "leaves", "hosts_per_leaf"), "star": ("hosts",),
                "dumbbell": ("hosts_per_side",)}

