"""fabric.link_delay: a target duration scaled once, carried to the simulator's links (the
export and `kvfabric sim`) and to the derived PFC headroom."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from kvfabric_command import kvfabric, usage_error

from kvfabric.derived import derived_values
from kvfabric.engines.hpcc_ns3.inputs import build_inputs
from kvfabric.engines.hpcc_ns3.mapping import FIELD_MAPPING, MAPPED, buffer_size_mb
from kvfabric.schema import SpecError
from kvfabric.spec import load_spec
from topologies.queues.settings import QueueSettings
from wire.frames import frame_bytes

ROOT = Path(__file__).resolve().parents[2]
FIDELITY = str(ROOT / "bench" / "fidelity_incast.toml")


# --- the field and the dilation rule -------------------------------------------------------

def test_link_delay_defaults_to_hpccs_1us_and_is_scaled_once_by_d():
    spec = load_spec(FIDELITY)
    assert spec.target["fabric"]["link_delay"] == pytest.approx(1e-6)
    two = load_spec(FIDELITY, {"fabric.link_delay": "2us", "fabric.dilation": 250})
    assert two.target["fabric"]["link_delay"] == pytest.approx(2e-6)  # spec.toml: target
    assert two.fabric["link_delay"] == pytest.approx(2e-6 * 250)      # emulated: x D, once
    assert two.queue_settings().link_delay_s == pytest.approx(2e-6 * 250)


@pytest.mark.parametrize("value", ["-1us", "20ms"])
def test_link_delay_out_of_range_is_a_spec_issue(value):
    with pytest.raises(SpecError) as err:
        load_spec(FIDELITY, {"fabric.link_delay": value})
    assert "fabric.link_delay" in {i.field for i in err.value.issues}


# --- the simulator -------------------------------------------------------------------------

def test_simulator_links_carry_the_specs_delay():
    inputs = build_inputs(load_spec(FIDELITY, {"fabric.link_delay": "2us"}))
    links = inputs.topology.splitlines()[2:]
    assert links and all(line.split()[3] == "0.002ms" for line in links)
    assert inputs.link_delay_s == pytest.approx(2e-6)
    assert not any("no link delay" in note for note in inputs.config.approximations)
    assert FIELD_MAPPING[("fabric", "link_delay")][0] == MAPPED


def test_simulator_buffer_grows_with_its_headroom_of_3_x_rate_x_link_delay():
    # 8 flows into one switch of nine 25G links: per port 3 x 25G x delay / 8 of headroom.
    short = load_spec(FIDELITY, {"fabric.link_delay": "1us"})
    long = load_spec(FIDELITY, {"fabric.link_delay": "5ms"})
    mb_short, note_short = buffer_size_mb(short)
    mb_long, note_long = buffer_size_mb(long)
    total = lambda note: int(note.split("(XOFF + headroom, ")[1].split(" B")[0])  # noqa: E731
    ports = 9
    added = ports * (math.ceil(3 * 25e9 * 5e-3 / 8) - math.ceil(3 * 25e9 * 1e-6 / 8))
    assert total(note_long) - total(note_short) == added
    assert mb_long > mb_short


# --- the derived PFC headroom --------------------------------------------------------------

def test_headroom_covers_the_reaction_plus_the_links_round_trip():
    base = QueueSettings(pfc_reaction_s=0.05)
    delayed = QueueSettings(pfc_reaction_s=0.05, link_delay_s=0.002)
    rate, mtu, ingress = 100_000_000, 1500, 3
    assert base.headroom(rate, mtu, ingress) == math.ceil(3 * rate / 8 * 0.05) + 2 * frame_bytes(
        mtu)
    assert delayed.headroom(rate, mtu, ingress) == (
        math.ceil(3 * rate / 8 * (0.05 + 2 * 0.002)) + 2 * frame_bytes(mtu))
    assert QueueSettings(headroom_bytes=9000, link_delay_s=1.0).headroom(rate, mtu, 3) == 9000


def test_derived_headroom_adds_ingress_x_target_rate_x_2_link_delays():
    """Bytes, so the same in target and emulated terms: 10 us at 25G adds 2 x 31250 B per
    ingress port against a 0 us link, whatever D."""
    for dilation in (100, 250):
        none = load_spec(FIDELITY, {"fabric.dilation": dilation, "fabric.link_delay": 0})
        ten = load_spec(FIDELITY, {"fabric.dilation": dilation, "fabric.link_delay": "10us"})
        (h0,), (h10,) = derived_values(none)["queues.headroom"], \
            derived_values(ten)["queues.headroom"]
        topo = ten.make_topology()
        ingress = topo.ingress_ports(topo.routers()[0])
        assert h10 - h0 == pytest.approx(ingress * 25e9 / 8 * 2 * 10e-6, abs=1)


# --- through the command -------------------------------------------------------------------

def test_sim_export_takes_the_link_delay_from_the_spec_or_link_delay(tmp_path):
    for args, expected in ((("--set", "fabric.link_delay=2us"), "0.002ms"),
                           (("--link-delay", "3us"), "0.003ms"), ((), "0.001ms")):
        out = tmp_path / expected
        proc = kvfabric("sim", FIDELITY, *args, "--export-only", out)
        assert proc.returncode == 0, proc.stderr
        links = (out / "topology.txt").read_text().splitlines()[2:]
        assert links and all(line.split()[3] == expected for line in links)


def test_sim_refuses_a_link_delay_out_of_range(tmp_path):
    err = usage_error(kvfabric("sim", FIDELITY, "--set", "fabric.link_delay=1s",
                               "--export-only", tmp_path))
    assert "fabric.link_delay" in err
