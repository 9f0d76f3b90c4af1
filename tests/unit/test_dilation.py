"""The time-dilation rule (kvfabric/dilation.py): rates / D, durations x D, bytes unchanged,
applied exactly once to every field of every section, by the field's kind."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from kvfabric.dilation import (
    PER_SECOND_FIELDS,
    WALL_CLOCK_FIELDS,
    Scale,
    emulate_params,
    field_kind,
)
from kvfabric.schema import SpecError
from kvfabric.spec import load_spec, shipped_experiments
from kvfabric.spec_fields import FABRIC_FIELDS, QUEUE_FIELDS
from kvfabric.spec_validate import validate
from kvfabric.workloads import WORKLOADS
from kvfabric.workloads.roce_incast import dcqcn_target_params, receiver_cc_args, sender_cc_args
from traffic.dcqcn import PROFILES, DcqcnParams


def _sections(kind: str):
    return {"fabric": FABRIC_FIELDS, "queues": QUEUE_FIELDS, "workload": WORKLOADS[kind].FIELDS}


def _assert_scaled_once(spec) -> int:
    """Every field of the emulated sections is its target value scaled by its kind's factor
    exactly once; returns how many fields were scaled (not left unchanged)."""
    d = spec.scale.dilation
    scaled = 0
    for section, fields in _sections(spec.workload["kind"]).items():
        target, emulated = spec.target[section], getattr(spec, section)
        for f in fields:
            t, e = target[f.name], emulated[f.name]
            how = field_kind(section, f.name, f.kind)
            if t is None or how == "same" or f.name == "dilation":
                assert e == t, f"{section}.{f.name} changed: {t!r} -> {e!r}"
                continue
            factor = 1 / d if how == "rate" else d
            assert e == pytest.approx(t * factor, rel=1e-12), f"{section}.{f.name}"
            scaled += t != 0 and d != 1
    return scaled


def test_every_shipped_experiment_is_scaled_once_by_kind():
    for name in shipped_experiments():
        _assert_scaled_once(load_spec(name))


def _random_value(rng: random.Random, f):
    lo = f.minimum if f.minimum is not None else 0
    hi = f.maximum if f.maximum is not None else 1e6
    if f.kind == "duration":
        return rng.uniform(lo, min(hi, 1.0))
    if f.kind == "rate":
        return rng.uniform(max(lo, 1e6), min(hi, 400e9))
    if f.kind == "float" and (f.name in ("rate", "prefill_tokens_per_s")):
        return rng.uniform(max(lo, 1.0), min(hi, 1e6))
    return None  # leave the default: sizes, counts and choices do not scale


def test_random_specs_scale_every_rate_and_duration_exactly_once():
    """A seeded property test: random workload kinds, target rates, dilations and values of
    every rate, duration and per-second field."""
    rng = random.Random(20261201)
    checked = delays = 0
    for _ in range(400):
        kind = rng.choice(sorted(WORKLOADS))
        raw = {"experiment": {"name": "p"}, "workload": {"kind": kind}}
        target = rng.choice([1e9, 10e9, 25e9, 100e9, 400e9])
        raw["fabric"] = {"target_rate": target,
                         "dilation": rng.choice([0, target / rng.uniform(2e7, 5e8)])}
        for section, fields in _sections(kind).items():
            for f in fields:
                if f.name in ("target_rate", "target_fabric_rate", "dilation", "kind"):
                    continue
                if rng.random() < 0.5 and (value := _random_value(rng, f)) is not None:
                    raw.setdefault(section, {})[f.name] = value
        try:
            spec = validate(raw)
        except SpecError:
            continue  # a random combination a workload's own checks reject
        _assert_scaled_once(spec)
        scale = spec.scale
        assert spec.fabric["host_rate"] == round(target / scale.dilation)
        checked += 1
        delays += "link_delay" in raw["fabric"]
    assert checked >= 100
    assert delays >= 30  # fabric.link_delay (a target duration) among the random fields


def test_link_delay_is_a_target_duration_multiplied_by_d_once():
    assert field_kind("fabric", "link_delay", "duration") == "duration"
    spec = load_spec("roce_incast", {"fabric.link_delay": "3us", "fabric.dilation": 500})
    assert spec.target["fabric"]["link_delay"] == pytest.approx(3e-6)
    assert spec.fabric["link_delay"] == pytest.approx(3e-6 * 500)
    assert _assert_scaled_once(spec) > 0


def test_default_dilation_brings_the_fastest_tier_to_100_mbit():
    assert Scale.for_fabric({"target_rate": 25e9}).dilation == 250
    two = Scale.for_fabric({"target_rate": 100e9, "target_fabric_rate": 400e9})
    assert two.dilation == 4000 and two.emulated_host_rate_bps == 25e6
    assert Scale.for_fabric({"target_rate": 10e6}).dilation == 1  # never a speed-up
    assert Scale.for_fabric({"target_rate": 25e9, "dilation": 100}).emulated_host_rate_bps \
        == 250e6


def test_an_emulated_rate_the_fabric_cannot_build_is_a_spec_issue():
    with pytest.raises(SpecError) as err:
        validate({"experiment": {"name": "x"}, "fabric": {"target_rate": "25G", "dilation": 1},
                  "workload": {"kind": "tcp_incast"}})
    assert "fabric.target_rate" in {i.field for i in err.value.issues}


def test_wall_clock_and_per_second_fields_exist_in_the_schema():
    """The two exception lists name real fields (a renamed field must not fall out)."""
    names = {("workload", f.name) for w in WORKLOADS.values() for f in w.FIELDS}
    assert WALL_CLOCK_FIELDS <= names and PER_SECOND_FIELDS <= names


@pytest.mark.parametrize("profile", PROFILES)
def test_model_parameters_scale_by_the_unit_in_their_names(profile):
    target = DcqcnParams.preset(profile, 25e9)
    emulated = emulate_params(target, Scale(250, 25e9, 25e9))
    for f in dataclasses.fields(target):
        t, e = getattr(target, f.name), getattr(emulated, f.name)
        if f.name.endswith("_bps"):
            assert e == pytest.approx(t / 250)
        elif f.name.endswith("_s"):
            assert e == pytest.approx(t * 250)
        else:
            assert e == t  # g, byte counter, steps, profile


def test_a_25g_spec_keeps_published_bytes_and_stretches_published_times():
    """No mixed scaling: HPCC's 100/400 KB ramp stays in bytes; the DCQCN timers and the
    CNP interval run 250 times longer; rates run 250 times slower."""
    spec = load_spec("roce_incast", {"workload.dcqcn_profile": "hpcc"})
    assert spec.scale.dilation == 250
    ramp = spec.queue_settings().ramp(spec.fabric["host_rate"], spec.fabric["mtu"])
    assert (ramp.kmin_bytes, ramp.kmax_bytes, ramp.pmax) == (100_000, 400_000, 0.2)
    assert dcqcn_target_params(spec).alpha_timer_s == 1e-6
    emulated = DcqcnParams(**json.loads(sender_cc_args(spec)[1]))
    assert emulated.alpha_timer_s == pytest.approx(250e-6)
    assert emulated.rate_increase_timer_s == pytest.approx(75e-3)
    assert emulated.line_rate_bps == pytest.approx(100e6)
    assert emulated.min_rate_bps == pytest.approx(4e6)  # 1 Gbit/s / 250
    hpcc_rx = receiver_cc_args(spec)
    assert hpcc_rx[-1] == repr(0.0)  # hpcc: an echo for every marked packet,
    assert hpcc_rx[hpcc_rx.index("--ecn-echo") + 1] == "ack"  # carried on the ACKs
    quantum = sender_cc_args(spec)
    assert float(quantum[quantum.index("--pacing-quantum-s") + 1]) == pytest.approx(250e-6)
    paper = load_spec("roce_incast")
    assert float(receiver_cc_args(paper)[-1]) == pytest.approx(50e-6 * 250)
    assert "--ecn-echo" not in receiver_cc_args(paper)  # the paper's profile sends CNPs
    assert paper.workload["retransmit_timeout"] == pytest.approx(4e-3 * 250)
