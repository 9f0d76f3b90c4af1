"""Every trace defect gives an error naming file and line, or is skipped and counted."""

import csv
import gzip
import json

import pytest

from traffic.trace_window import Selection
from traffic.traces import TraceError, check_trace, read_azure, read_mooncake, rescale

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
GOOD_ROW = "2023-11-16 18:15:46.6805900,4808,10\r\n"


def mc(ts, inp=10, out=1, ids=()):
    return json.dumps({"timestamp": ts, "input_length": inp, "output_length": out,
                       "hash_ids": list(ids)}) + "\n"


def test_latin1_byte_is_an_error_on_its_line_and_skippable(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes((HEADER + GOOD_ROW).encode() + "2023-11-16 18:15:47,12,1 caf\xe9\r\n"
                     .encode("latin-1") + GOOD_ROW.encode())
    with pytest.raises(TraceError, match=r"t.csv:3: not UTF-8: byte 0xe9"):
        read_azure(path)
    trace = read_azure(path, skip_malformed=True)
    assert trace.skipped_lines == 1 and len(trace.requests) == 2


def test_gzip_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(mc(0).encode()))
    with pytest.raises(TraceError, match=r"t.jsonl.gz:1: gzip-compressed .* decompress"):
        read_mooncake(path, skip_malformed=True)


def test_csv_field_over_the_csv_modules_limit_is_an_error_on_its_line(tmp_path):
    path = tmp_path / "t.csv"
    big = "9" * (csv.field_size_limit() + 1)
    path.write_text(HEADER + GOOD_ROW + f"2023-11-16 18:15:47,{big},1\r\n", newline="")
    with pytest.raises(TraceError, match=r"t.csv:3: bad CSV: field larger than field limit"):
        read_azure(path)


@pytest.mark.parametrize("stamp", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_or_infinite_mooncake_timestamps_are_errors(tmp_path, stamp):
    path = tmp_path / "t.jsonl"
    path.write_text(f'{{"timestamp": {stamp}, "input_length": 1, "output_length": 1}}\n'
                    + mc(5))
    with pytest.raises(TraceError, match=r"t.jsonl:1: "):
        read_mooncake(path)
    assert [r.arrival_s for r in read_mooncake(path, skip_malformed=True).requests] == [0.0]


@pytest.mark.parametrize("stamp", ["2023-02-30 10:00:00", "2023-11-16 25:00:00",
                                   "2023-11-16 18:61:00", "2023-13-01 00:00:00"])
def test_impossible_dates_are_errors_not_rolled_over(tmp_path, stamp):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + GOOD_ROW + f"{stamp},5,1\r\n", newline="")
    with pytest.raises(TraceError, match=r"t.csv:3: impossible date-time"):
        read_azure(path)


@pytest.mark.parametrize("text,line,reason", [
    ("", 1, "empty file"), (HEADER, 1, "header only"), ("\n\n", 2, "only blank lines")])
def test_empty_or_header_only_files_are_errors(tmp_path, text, line, reason):
    path = tmp_path / "t.csv"
    path.write_text(text, newline="")
    with pytest.raises(TraceError, match=rf"t.csv:{line}: {reason}"):
        read_azure(path)


def test_empty_mooncake_file_and_all_lines_bad_are_errors(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(TraceError, match="e.jsonl:1: empty file"):
        check_trace(empty, "mooncake")
    bad = tmp_path / "b.jsonl"
    bad.write_text("{x\n[1]\n")
    with pytest.raises(TraceError, match="b.jsonl:2: no valid request: all 2"):
        read_mooncake(bad, skip_malformed=True)


def test_unterminated_quote_is_reported_on_its_line_and_costs_only_that_line(tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"2023-11-16 18:15:{40 + i}.5,{100 + i},1\r\n" for i in range(10)]
    rows[2] = '"2023-11-16 18:15:42.5,102,1\r\n'
    path.write_text(HEADER + "".join(rows), newline="")
    with pytest.raises(TraceError, match=r"t.csv:4: bad CSV: unterminated quote"):
        read_azure(path)
    trace = read_azure(path, skip_malformed=True)
    assert trace.skipped_lines == 1 and len(trace.requests) == 9
    assert trace.skipped == [f"{path}:4: bad CSV: unterminated quote"]


def test_utf8_bom_is_dropped_in_both_formats(tmp_path):
    azure = tmp_path / "t.csv"
    azure.write_bytes(b"\xef\xbb\xbf" + (HEADER + GOOD_ROW).encode())
    assert len(read_azure(azure).requests) == 1
    moon = tmp_path / "t.jsonl"
    moon.write_bytes(b"\xef\xbb\xbf" + mc(0).encode())
    assert len(read_mooncake(moon).requests) == 1


def test_crlf_without_final_newline_as_azure_publishes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes((HEADER + GOOD_ROW + GOOD_ROW.rstrip()).encode())
    assert len(read_azure(path).requests) == 2


@pytest.mark.parametrize("kwargs", [dict(rate_scale=float("inf")), dict(rate_scale=float("nan")),
                                    dict(time_scale=float("inf")), dict(jitter_s=float("nan")),
                                    dict(rate_scale=0.0)])
def test_nan_or_infinite_rescaling_arguments_are_clear_value_errors(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        rescale([], **kwargs)
    with pytest.raises(ValueError, match=name):
        Selection(**kwargs)


def test_an_undecodable_azure_header_is_fatal_even_when_skipping(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"TIMESTAMP,Context\xe9Tokens,GeneratedTokens\r\n" + GOOD_ROW.encode())
    with pytest.raises(TraceError, match=r"t.csv:1: not UTF-8.*before the header"):
        read_azure(path, skip_malformed=True)


def test_a_line_longer_than_the_limit_is_skipped_without_being_held(tmp_path, monkeypatch):
    from traffic import trace_files

    monkeypatch.setattr(trace_files, "MAX_LINE_BYTES", 100)
    path = tmp_path / "t.jsonl"
    path.write_text(mc(0) + mc(1, ids=range(200)) + mc(2))
    with pytest.raises(TraceError, match=r"t.jsonl:2: line longer than 100 bytes"):
        read_mooncake(path)
    trace = read_mooncake(path, skip_malformed=True)
    assert trace.skipped_lines == 1 and [r.arrival_s for r in trace.requests] == [0.0, 0.002]
