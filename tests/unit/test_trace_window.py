"""Trace windows, thinning to a rate, time scaling, and prefix hits on the kept requests."""

import json
from pathlib import Path

import numpy as np
import pytest

from traffic.trace_window import COPY_ID_STRIDE, Selection, busiest_window
from traffic.traces import read_mooncake

CONVERSATION = Path("/work/shared/traces/conversation_trace.jsonl")


def write(path, rows):
    path.write_text("".join(json.dumps({"timestamp": t, "input_length": n, "output_length": 1,
                                        "hash_ids": list(ids)}) + "\n" for t, n, ids in rows))
    return path


def test_busiest_window_holds_the_most_arrivals_earliest_on_ties():
    assert busiest_window(np.array([0.0, 1.0, 5.0, 5.5, 5.9, 9.0]), 1.0) == (5.0, 6.0)
    assert busiest_window(np.array([0.0, 3.0]), 1.0) == (0.0, 1.0)


def test_start_and_duration_keep_the_window_and_restart_time_at_its_start(tmp_path):
    path = write(tmp_path / "t.jsonl", [(i * 1000, 10, []) for i in range(10)])
    trace = read_mooncake(path, start_s=2.0, duration_s=3.0)
    assert [r.arrival_s for r in trace.requests] == [0.0, 1.0, 2.0]
    assert trace.mapping["window_start_s"] == 2.0 and trace.mapping["window_end_s"] == 5.0
    assert trace.mapping["requests_in_file"] == 10 and trace.mapping["requests_kept"] == 3
    json.dumps(trace.mapping, allow_nan=False)  # a run stores it as it is
    json.dumps(read_mooncake(write(tmp_path / "one.jsonl", [(0, 0, [])])).mapping,
               allow_nan=False)  # one request, no input: no rate, no cached share


def test_prefix_hits_are_counted_on_the_window_not_on_what_came_before(tmp_path):
    path = write(tmp_path / "t.jsonl", [(0, 1024, [1, 2]), (1000, 1024, [1, 2]),
                                        (2000, 1024, [1, 2])])
    assert [r.cached_tokens for r in read_mooncake(path).requests] == [0, 1024, 1024]
    assert [r.cached_tokens for r in read_mooncake(path, start_s=1.0).requests] == [0, 1024]


def test_rate_rps_thins_the_window_to_that_mean_rate_deterministically(tmp_path):
    path = write(tmp_path / "t.jsonl", [(i * 10, 10, [i]) for i in range(10_000)])  # 100/s
    trace = read_mooncake(path, rate_rps=10.0, seed=4)
    assert trace.mapping["load_scale"] == pytest.approx(0.1, rel=1e-3)
    assert len(trace.requests) == pytest.approx(1000, rel=0.1)
    assert trace.requests == read_mooncake(path, rate_rps=10.0, seed=4).requests


def test_superposed_copies_do_not_hit_each_others_cache(tmp_path):
    path = write(tmp_path / "t.jsonl", [(0, 1024, [7, 8]), (1000, 1024, [7, 9])])
    trace = read_mooncake(path, rate_scale=2.0)
    assert len(trace.requests) == 4
    assert sorted(r.cached_tokens for r in trace.requests) == [0, 0, 512, 512]
    assert {r.block_ids[0] for r in trace.requests} == {7, 7 + COPY_ID_STRIDE}


def test_time_scale_applies_to_the_kept_window(tmp_path):
    path = write(tmp_path / "t.jsonl", [(i * 1000, 10, []) for i in range(6)])
    trace = read_mooncake(path, start_s=2.0, duration_s=10.0, time_scale=0.5)
    assert [r.arrival_s for r in trace.requests] == [0.0, 0.5, 1.0, 1.5]


def test_busiest_window_and_start_are_exclusive():
    with pytest.raises(ValueError, match="busiest_s or start_s"):
        Selection(busiest_s=10, start_s=1)


@pytest.mark.skipif(not CONVERSATION.is_file(), reason=f"{CONVERSATION} absent (public "
                    "Mooncake trace, not committed; see ../shared/traces/README.md)")
def test_a_ten_percent_sample_of_the_conversation_trace_sees_its_own_cache_share():
    full = read_mooncake(CONVERSATION)
    sample = read_mooncake(CONVERSATION, rate_scale=0.1, seed=0)
    # The whole trace's hits, thinned afterwards, claimed about 35 % cached; the sample's own
    # prefix cache holds far less because 9 in 10 earlier turns of each conversation are gone.
    assert full.mapping["cached_share"] == pytest.approx(0.374, abs=0.01)
    assert sample.mapping["cached_share"] == pytest.approx(0.12, abs=0.02)
    busiest = read_mooncake(CONVERSATION, busiest_s=10.0)
    assert busiest.mapping["window_start_s"] == 3444.0 and len(busiest.requests) == 73


def test_an_empty_window_or_a_rate_without_a_time_span_is_a_clear_error(tmp_path):
    path = write(tmp_path / "t.jsonl", [(0, 10, []), (1000, 10, [])])
    with pytest.raises(ValueError, match="window 5-6 s holds no request .* spans 0-1 s"):
        read_mooncake(path, start_s=5.0, duration_s=1.0)
    same = write(tmp_path / "same.jsonl", [(0, 10, []), (0, 10, [])])
    with pytest.raises(ValueError, match="no rate to thin"):
        read_mooncake(same, rate_rps=1.0)
