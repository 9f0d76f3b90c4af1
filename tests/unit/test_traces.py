"""Trace readers (Mooncake JSONL, Azure CSV), rescaling, and seeded synthetic arrivals."""

import json

import numpy as np
import pytest

from traffic.traces import (
    Request,
    TraceError,
    mean_rate_rps,
    on_off_arrivals,
    parse_timestamp_s,
    poisson_arrivals,
    read_azure,
    read_mooncake,
    requests_from_arrivals,
    rescale,
)


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def mc(ts, inp, out, ids):
    return {"timestamp": ts, "input_length": inp, "output_length": out, "hash_ids": ids}


AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def test_mooncake_ms_timestamps_become_seconds_from_the_first_request(tmp_path):
    trace = read_mooncake(write_jsonl(tmp_path / "t.jsonl", [
        mc(1000, 600, 10, [1, 2]), mc(1000, 700, 20, [3, 4]), mc(3500, 100, 5, [9])]))
    assert [r.arrival_s for r in trace.requests] == [0.0, 0.0, 2.5]
    assert trace.requests[0] == Request(0.0, 600, 10, 0, (1, 2))
    assert trace.skipped_lines == 0


def test_mooncake_previously_seen_leading_blocks_are_prefix_cache_hits(tmp_path):
    trace = read_mooncake(write_jsonl(tmp_path / "t.jsonl", [
        mc(0, 1500, 1, [1, 2, 3]),
        mc(1, 1600, 1, [1, 2, 4, 5]),  # two leading 512-token blocks seen
        mc(2, 1200, 1, [6, 1, 2]),  # seen blocks, but not as a prefix
        mc(3, 300, 1, [1]),  # hit capped at the input length
    ]))
    assert [r.cached_tokens for r in trace.requests] == [0, 1024, 0, 300]


def test_mooncake_malformed_line_raises_trace_error_naming_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [mc(0, 1, 1, []), "", "{not json"])
    with pytest.raises(TraceError) as info:
        read_mooncake(path)
    assert info.value.line_number == 3
    assert f"{path}:3:" in str(info.value)


def test_mooncake_skip_malformed_skips_and_counts_bad_lines(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        mc(0, 100, 1, [1]),
        "{not json",
        {"timestamp": 5, "input_length": 1},  # output_length missing
        mc(6, -1, 1, []),
        mc(7, 10, 1, "abc"),
        "[1, 2]",
        mc(8, 10, 1, [1]),
    ])
    trace = read_mooncake(path, skip_malformed=True)
    assert trace.skipped_lines == 5
    assert [r.arrival_s for r in trace.requests] == [0.0, 0.008]
    assert trace.skipped[0].startswith(f"{path}:2:")


def test_azure_sub_second_digits_are_kept_beyond_microseconds(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_HEADER
                    + "2023-11-16 18:15:46.6805900,4808,10\n"
                    + "2023-11-16 18:15:50.0000001,3180,8\n"
                    + "2023-11-16 18:16:00,110,27\n")
    trace = read_azure(path)
    assert [(r.input_tokens, r.output_tokens, r.cached_tokens) for r in trace.requests] == [
        (4808, 10, 0), (3180, 8, 0), (110, 27, 0)]
    assert trace.requests[1].arrival_s == pytest.approx(3.3194101, abs=1e-9)
    assert trace.requests[2].arrival_s == pytest.approx(13.31941, abs=1e-9)


def test_azure_malformed_rows_name_the_file_line_counting_the_header(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_HEADER + "2023-11-16 18:15:46.1,10,1\n" + "yesterday,10,1\n")
    with pytest.raises(TraceError, match=r"azure.csv:3: not a date-time"):
        read_azure(path)


def test_azure_skip_malformed_counts_every_kind_of_bad_row(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_HEADER
                    + "2023-11-16 18:15:46.1,10,1\n"
                    + "2023-11-16 18:15:47.1,ten,1\n"
                    + "2023-11-16 18:15:48.1,10\n"
                    + "2023-11-16 18:15:49.1,10,1,extra\n"
                    + "2023-11-16 18:15:50.1,-3,1\n"
                    + "2023-11-16 18:15:51.6,20,2\n")
    trace = read_azure(path, skip_malformed=True)
    assert trace.skipped_lines == 4
    assert [r.arrival_s for r in trace.requests] == pytest.approx([0.0, 5.5])


def test_azure_header_without_the_published_columns_is_an_error_on_line_1(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text("time,in,out\n1,2,3\n")
    with pytest.raises(TraceError, match="azure.csv:1:"):
        read_azure(path)


def test_timestamps_with_utc_offsets_are_converted_to_utc():
    assert parse_timestamp_s("2023-11-16T18:15:46Z") == parse_timestamp_s("2023-11-16 18:15:46")
    assert parse_timestamp_s("2023-11-16 19:15:46+01:00") == parse_timestamp_s(
        "2023-11-16 18:15:46")


def test_unsorted_trace_lines_come_out_sorted_by_arrival(tmp_path):
    trace = read_mooncake(write_jsonl(tmp_path / "t.jsonl", [
        mc(500, 1, 1, []), mc(100, 2, 1, []), mc(300, 3, 1, [])]))
    assert [r.input_tokens for r in trace.requests] == [2, 3, 1]
    assert [r.arrival_s for r in trace.requests] == pytest.approx([0.0, 0.2, 0.4])


def test_time_scale_stretches_arrivals_and_keeps_every_request(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [mc(0, 1, 1, []), mc(1000, 1, 1, [])])
    assert [r.arrival_s for r in read_mooncake(path, time_scale=0.1).requests] == [0.0, 0.1]


def test_rate_scale_changes_the_load_but_not_the_time_axis():
    base = [Request(i * 0.1, 100, 10) for i in range(1000)]
    doubled = rescale(base, rate_scale=2.0)
    assert len(doubled) == 2000 and doubled[-1].arrival_s == base[-1].arrival_s
    halved = rescale(base, rate_scale=0.5, seed=3)
    assert 400 < len(halved) < 600
    assert halved == rescale(base, rate_scale=0.5, seed=3)  # deterministic with a seed


def test_jitter_spreads_shared_timestamps_within_bounds_deterministically():
    base = [Request(1.0, 10, 1) for _ in range(100)]
    spread = rescale(base, jitter_s=1e-3, seed=1)
    times = [r.arrival_s for r in spread]
    assert times == sorted(times) and len(set(times)) == 100
    assert all(1.0 <= t < 1.001 for t in times)
    assert spread == rescale(base, jitter_s=1e-3, seed=1)


def test_poisson_arrivals_are_seeded_and_have_the_requested_mean_rate():
    arrivals = poisson_arrivals(100.0, count=20_000, seed=11)
    assert arrivals == poisson_arrivals(100.0, count=20_000, seed=11)
    assert arrivals != poisson_arrivals(100.0, count=20_000, seed=12)
    gaps = np.diff([0.0] + arrivals)
    assert gaps.mean() == pytest.approx(0.01, rel=0.03)
    assert gaps.std() == pytest.approx(0.01, rel=0.05)  # exponential: std equals mean
    windowed = poisson_arrivals(100.0, duration_s=2.0, start_s=5.0, seed=1)
    assert all(5.0 < t < 7.0 for t in windowed)


def test_on_off_arrivals_are_silent_during_off_periods():
    arrivals = on_off_arrivals(1000.0, on_s=0.01, off_s=0.04, duration_s=1.0, seed=5)
    assert all((t % 0.05) < 0.01 for t in arrivals)
    assert len(arrivals) == pytest.approx(1000.0 * 0.01 * 20, rel=0.15)
    assert arrivals == on_off_arrivals(1000.0, on_s=0.01, off_s=0.04, duration_s=1.0, seed=5)
    mmpp = on_off_arrivals(1000.0, 0.01, 0.04, duration_s=1.0, exponential_periods=True, seed=5)
    assert mmpp and all(0.0 < t < 1.0 for t in mmpp)


def test_requests_from_arrivals_accept_one_value_or_one_per_arrival():
    reqs = requests_from_arrivals([0.0, 0.5], input_tokens=[100, 200], output_tokens=8,
                                  cached_tokens=150)
    assert reqs == [Request(0.0, 100, 8, 100), Request(0.5, 200, 8, 150)]
    assert mean_rate_rps(reqs) == 2.0
    with pytest.raises(ValueError, match="input_tokens"):
        requests_from_arrivals([0.0], input_tokens=[1, 2], output_tokens=1)
