"""A bad trace stops `kvfabric run kv_trace` at spec validation (exit 2, file and line, nothing
built) and `python -m traffic.kv_pcap` with one line on stderr (exit 2, no traceback)."""

import pytest

from kvfabric import cli, runner
from traffic import kv_pcap

BAD_TRACES = {
    "nan.jsonl": (b'{"timestamp": 0, "input_length": 1, "output_length": 1}\n'
                  b'{"timestamp": NaN, "input_length": 1, "output_length": 1}\n', ":2: NaN"),
    "latin1.jsonl": ('{"timestamp": 0, "input_length": 1, "output_length": 1, "x": "\xe9"}\n'
                     .encode("latin-1"), ":1: not UTF-8"),
    "empty.jsonl": (b"", ":1: empty file"),
}


@pytest.fixture
def no_fabric(monkeypatch):
    """A test that got past validation would build a fabric: fail it instead."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("spec validation let a bad trace through to the runner")
    monkeypatch.setattr(runner, "run_experiment", refuse)


@pytest.mark.parametrize("name", sorted(BAD_TRACES))
def test_kvfabric_run_with_a_bad_trace_exits_2_naming_file_and_line(name, tmp_path, capsys,
                                                                     no_fabric):
    data, expected = BAD_TRACES[name]
    trace = tmp_path / name
    trace.write_bytes(data)
    code = cli.main(["run", "kv_trace", "--set", f"workload.trace={trace}",
                     "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and f"{trace}{expected}" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_kv_pcap_with_a_bad_trace_prints_one_line_and_exits_2(tmp_path, capsys):
    trace = tmp_path / "nan.jsonl"
    trace.write_bytes(BAD_TRACES["nan.jsonl"][0])
    code = kv_pcap.main(["trace", "--mooncake", str(trace), "--out", str(tmp_path / "o.pcap")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"kv_pcap: {trace}:2: NaN is not a number\n"
    assert not (tmp_path / "o.pcap").exists()


def test_kv_pcap_refuses_an_infinite_rate_scale_without_a_traceback(tmp_path, capsys):
    trace = tmp_path / "ok.jsonl"
    trace.write_bytes(BAD_TRACES["nan.jsonl"][0].split(b"\n")[0] + b"\n")
    code = kv_pcap.main(["trace", "--mooncake", str(trace), "--rate-scale", "inf",
                         "--out", str(tmp_path / "o.pcap")])
    assert code == 2 and "rate_scale must be a finite number" in capsys.readouterr().err


def test_kv_pcap_replays_only_the_selected_window(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    rows = [f'{{"timestamp": {t}, "input_length": 16, "output_length": 1}}\n'
            for t in (0, 100, 5000, 5100, 5200, 9000)]
    trace.write_text("".join(rows))
    code = kv_pcap.main(["trace", "--mooncake", str(trace), "--busiest-s", "1",
                         "--prefill", "1", "--decode", "1", "--out", str(tmp_path / "o.pcap")])
    assert code == 0 and "3 transfers" in capsys.readouterr().out  # the 5.0-5.2 s burst
