"""The hpcc-ns3 engine's inputs: the files written for a spec against expected files, the
mapping of every spec field, and the workloads it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfabric.engines.hpcc_ns3.inputs import build_inputs, horizon
from kvfabric.engines.hpcc_ns3.mapping import (
    FIELD_MAPPING,
    NOT_EXPRESSIBLE,
    simulator_config,
    spec_fields,
)
from kvfabric.engines.hpcc_ns3.plan import EXPORTABLE, NotExportable, SimFlow, transfers
from kvfabric.spec import load_spec
from kvfabric.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "hpcc_ns3"
FIDELITY = str(ROOT / "bench" / "fidelity_incast.toml")


def test_fidelity_incast_inputs_match_the_expected_files(tmp_path):
    """HPCC's 8-to-1 reference as its third.cc reads it: the --cc dcqcn preset at 25G, one
    switch (node 9) with nine 25 Gbit/s, 1 us links, eight 1 MB flows at 2 s to node 0."""
    build_inputs(load_spec(FIDELITY)).write(tmp_path)
    for name in ("config.txt", "topology.txt", "flow.txt", "trace.txt"):
        assert (tmp_path / name).read_text() == (FIXTURES / "fidelity_incast" / name
                                                 ).read_text(), name


def test_leafspine_topology_numbers_hosts_first_and_lists_every_link():
    spec = load_spec("kv_trace", {"fabric.topology": "leafspine", "fabric.spines": 2,
                                  "fabric.leaves": 3, "fabric.hosts_per_leaf": 2,
                                  "fabric.target_rate": "100G",
                                  "fabric.target_fabric_rate": "400G"})
    lines = build_inputs(spec).topology.splitlines()
    assert lines[0] == "11 5 12"  # 6 hosts + 5 switches; 6 host links + 3 x 2 uplinks
    assert sorted(map(int, lines[1].split())) == [6, 7, 8, 9, 10]
    rates = sorted(line.split()[2] for line in lines[2:])
    assert rates == ["100000000000bps"] * 6 + ["400000000000bps"] * 6
    assert all(int(line.split()[0]) < 6 or int(line.split()[1]) >= 6 for line in lines[2:])
    kmin = simulator_config(spec).keys["KMIN_MAP"]
    assert kmin == "2 100000000000 400 400000000000 1600"  # HPCC's 100 KB x bw/25G


def test_incast_rounds_become_one_flow_per_block_at_each_round_start():
    spec = load_spec(FIDELITY, {"workload.blocks": 3, "workload.interval": "500us"})
    flows, notes = transfers(spec)
    assert len(flows) == 24
    assert sorted({f.start_s for f in flows}) == pytest.approx([0.0, 500e-6, 1e-3])
    assert any("own queue pair" in n for n in notes)


@pytest.mark.parametrize("kind", sorted(set(WORKLOADS) - set(EXPORTABLE)))
def test_workloads_that_are_not_transfers_are_refused_with_the_reason(kind):
    spec = load_spec({"tcp_flows": "ecn_threshold", "udp_flows": "lossless_incast"}.get(kind,
                                                                                        kind))
    assert spec.workload["kind"] == kind
    with pytest.raises(NotExportable, match=f"{kind!r} cannot run on hpcc-ns3: its"):
        transfers(spec)


@pytest.mark.parametrize("kind", EXPORTABLE)
def test_every_spec_field_has_a_mapping(kind):
    missing = [f"{section}.{f.name}" for section, f in spec_fields(kind)
               if (section, f.name) not in FIELD_MAPPING]
    assert missing == []


@pytest.mark.parametrize("override,reported", [
    ({"queues.pfc": False}, "queues.pfc = False not expressed"),
    ({"queues.xon": "3MB"}, "queues.xon = 3000000 not expressed"),
    ({"workload.ecn_marking": "enqueue"}, "workload.ecn_marking = 'enqueue' not expressed"),
    ({"workload.cnp_interval": "50us"}, "workload.cnp_interval = 5e-05 not expressed"),
    ({"queues.lossy_ecn": True}, "queues.lossy_ecn = True not expressed"),
])
def test_a_field_the_simulator_cannot_express_is_reported(override, reported):
    notes = simulator_config(load_spec(FIDELITY, override)).approximations
    assert any(n.startswith(reported) for n in notes), notes


def test_what_the_simulator_does_itself_is_not_reported_as_missing():
    notes = simulator_config(load_spec(FIDELITY)).approximations
    assert not any(n.startswith(("workload.ecn_marking", "queues.pfc ")) for n in notes)


def test_every_not_expressible_field_is_reported_when_set():
    """Each such field of roce_incast, set away from its default, appears in the notes."""
    spec = load_spec(FIDELITY)
    for section, f in spec_fields("roce_incast"):
        if FIELD_MAPPING[(section, f.name)][0] != NOT_EXPRESSIBLE:
            continue
        value = {"buffer": "128KiB", "controller": "ecmp", "tenant_meters": True,
                 "enabled": False, "pfc": False, "lossy_ecn": True, "xoff": "2MB",
                 "xon": "1MB", "headroom": "200KB", "pfc_reaction": "10us", "window": 64,
                 "retransmit_timeout": "1ms", "ecn_marking": "enqueue",
                 "cnp_interval": "4us", "pacing_quantum": "2us"}[f.name]
        where = "workload" if section == "roce_incast" else section
        extra = {"fabric.mode": "openflow"} if f.name == "controller" else {}
        if f.name == "tenant_meters":
            continue  # needs a [tenants] table, which --set cannot give
        notes = simulator_config(load_spec(FIDELITY, {f"{where}.{f.name}": value, **extra})
                                 ).approximations
        assert any(n.startswith(f"{where}.{f.name} =") for n in notes), (f.name, notes)
    assert spec.workload["kind"] == "roce_incast"


def test_dcqcn_profiles_map_to_hpcc_keys_and_say_what_is_lost():
    keys = simulator_config(load_spec(FIDELITY)).keys
    assert (keys["CC_MODE"], keys["RP_TIMER"], keys["RATE_AI"], keys["MIN_RATE"]) == (
        "1", "300", "5Mb/s", "1000Mb/s")
    paper = simulator_config(load_spec(FIDELITY, {"workload.dcqcn_profile": "paper"}))
    assert (paper.keys["ALPHA_RESUME_INTERVAL"], paper.keys["RP_TIMER"],
            paper.keys["FAST_RECOVERY_TIMES"]) == ("55", "55", "5")
    assert any("10000000 B not expressed" in n for n in paper.approximations)
    none = simulator_config(load_spec(FIDELITY, {"workload.transports": "roce-none"}))
    assert none.keys["CC_MODE"] == "0"


def test_ecn_thresholds_off_the_kb_grid_are_rounded_and_reported():
    cfg = simulator_config(load_spec(FIDELITY, {"queues.kmin": "100500B"}))
    assert cfg.keys["KMIN_MAP"] == "1 25000000000 100"
    assert any("Kmin 100500 B" in n for n in cfg.approximations)


def test_horizon_leaves_room_for_every_byte_and_ends_on_a_queue_dump():
    flows = [SimFlow("h2", "h1", 1_000_000, 0.0), SimFlow("h3", "h1", 1_000_000, 0.01)]
    stop_s, qlen_end_ns = horizon(flows, 25e9)
    assert qlen_end_ns % 100_000_000 == 0
    assert qlen_end_ns >= (2.0 + 0.01 + 2 * 16e6 / 25e9) * 1e9
    assert stop_s > qlen_end_ns / 1e9


def test_traced_nodes_are_listed_by_simulator_id_and_unknown_ones_refused():
    spec = load_spec(FIDELITY)
    inputs = build_inputs(spec, trace_nodes=("l1", "h1"))
    assert inputs.trace == "2\n9 0\n"
    assert inputs.config.keys["ENABLE_TRACE"] == "1"
    assert build_inputs(spec).config.keys["ENABLE_TRACE"] == "0"
    with pytest.raises(NotExportable, match="h99"):
        build_inputs(spec, trace_nodes=("h99",))
