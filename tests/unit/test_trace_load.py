"""The trace window, thinning, time scaling and budget check wired into kv_trace: what a spec
asks for is what the plan replays, the mapping says so, and a plan that cannot fit is
refused at validation."""

from __future__ import annotations

import json

import pytest

from kvfabric.schema import SpecError
from kvfabric.spec import load_spec
from kvfabric.workloads.kv_trace import plan


def _trace(tmp_path, count=200, per_s=10):
    """``count`` requests ``1 / per_s`` s apart; all share block 1, then one of their own."""
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"timestamp": int(1000 * k / per_s),
                                        "input_length": 1024, "output_length": 8,
                                        "hash_ids": [1, 100 + k]}) + "\n"
                            for k in range(count)))
    return str(path)


def _spec(overrides):
    return load_spec("kv_trace", overrides={"workload.max_requests": 100_000, **overrides})


def test_window_and_thinning_are_recorded_and_hits_recomputed_on_what_is_kept(tmp_path):
    spec = _spec({"workload.trace": _trace(tmp_path), "workload.trace_start_s": 5.0,
                  "workload.trace_duration_s": 10.0, "workload.trace_rate_rps": 2.0,
                  "workload.time_scale": 0.001})
    transfers, mapping = plan(spec.workload, spec.make_topology().host_names(), 1,
                              spec.scale.dilation)
    assert mapping["window_start_s"] == 5.0 and mapping["window_end_s"] == 15.0
    assert mapping["requests_in_window"] == 100
    assert mapping["load_scale"] == pytest.approx(0.2)
    kept = mapping["requests_kept"]
    assert 5 <= kept <= 40 and mapping["requests_replayed"] == kept
    # block 1 is cached for every kept request but the first: (kept - 1) x 512 of kept x 1024
    assert mapping["cached_share"] == pytest.approx((kept - 1) * 512 / (kept * 1024))
    assert len({t.request_index for t in transfers}) == kept
    assert mapping["dilation"] == spec.scale.dilation


def test_arrivals_are_target_times_stretched_by_the_dilation(tmp_path):
    spec = _spec({"workload.trace": _trace(tmp_path, count=3, per_s=1000),
                  "workload.time_scale": 2.0,
                  "workload.prefill_tokens_per_s": 1e9})
    transfers, _ = plan(spec.workload, spec.make_topology().host_names(), 1,
                        spec.scale.dilation)
    starts = sorted({round(t.start_s, 3) for t in transfers})
    d = spec.scale.dilation
    # trace ms 0, 1, 2, doubled by time_scale, x D; every prefill takes the same time
    assert starts[1] - starts[0] == pytest.approx(2e-3 * d, rel=0.01)
    assert starts[2] - starts[0] == pytest.approx(4e-3 * d, rel=0.01)


def test_busiest_window_picks_the_densest_stretch(tmp_path):
    path = tmp_path / "b.jsonl"
    stamps = [0, 5000, 10000, 20000, 20100, 20200, 20300, 30000]
    path.write_text("".join(json.dumps({"timestamp": s, "input_length": 64,
                                        "output_length": 4, "hash_ids": [k]}) + "\n"
                            for k, s in enumerate(stamps)))
    spec = _spec({"workload.trace": str(path), "workload.busiest_s": 1.0,
                  "workload.time_scale": 0.001})
    _, mapping = plan(spec.workload, spec.make_topology().host_names(), 1, spec.scale.dilation)
    assert mapping["window_start_s"] == 20.0 and mapping["requests_kept"] == 4


def test_only_the_emulated_nic_is_planned(tmp_path):
    spec = _spec({"workload.trace": _trace(tmp_path, count=4, per_s=1000)})
    transfers, mapping = plan(spec.workload, spec.make_topology().host_names(), 1,
                              spec.scale.dilation)
    assert len(transfers) == 4  # one transfer per request, NIC 0 only (not tp_size of them)
    assert mapping["emulated_nics"] == "NIC 0 of 8 per host"


def test_a_plan_over_the_timeout_is_refused_with_numbers_and_the_fix(tmp_path):
    with pytest.raises(SpecError) as err:
        _spec({"workload.trace": _trace(tmp_path, count=2000, per_s=1)})
    text = str(err.value)
    assert "GB" in text and "timeout" in text and "shorter window" in text


def test_serving_disagg_refuses_a_load_its_nics_cannot_carry_naming_the_host():
    with pytest.raises(SpecError) as err:
        load_spec("serving_disagg", overrides={"workload.max_requests": 100,
                                               "workload.rate": 400.0,
                                               "workload.input_tokens": 16384})
    text = str(err.value)
    assert "h2 must send" in text and "120 s timeout" in text and "max_requests" in text
