"""The roce_incast summary comes from the raw files alone: completion-time percentiles,
goodput, CNP/cut/drop totals per transport, transports.csv and the plot."""

import csv
import json

import pytest

from kvfabric.spec import load_spec
from kvfabric.workloads.roce_incast_analysis import analyse


def _messages(path, sender, fcts):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sender", "qpn", "msg_id", "size_bytes", "posted_s", "completed_s", "fct_s"])
        for k, fct in enumerate(fcts):
            w.writerow([sender, 256, k, 1000, k * 1.0, k * 1.0 + fct, fct])


def test_summary_from_raw_files(tmp_path):
    spec = load_spec("roce_incast", {"workload.senders": 2, "workload.blocks": 2,
                                      "workload.transports": "roce-dcqcn,tcp-cubic"})
    roce, tcp = tmp_path / "roce-dcqcn", tmp_path / "tcp-cubic"
    roce.mkdir()
    tcp.mkdir()
    _messages(roce / "roce_messages_h2.csv", "h2", [0.1, 0.2])
    _messages(roce / "roce_messages_h3.csv", "h3", [0.3, 0.4])
    for host, cuts in (("h2", 3), ("h3", 4)):
        (roce / f"roce_sender_{host}.json").write_text(json.dumps({"qps": [{
            "cnps_received": cuts, "rate_cuts": cuts, "retransmitted_packets": 1,
            "timeouts": 0}]}))
    (roce / "roce_receiver_h1.json").write_text(json.dumps({"qps": [
        {"cnps_sent": 3, "ce_packets": 10}, {"cnps_sent": 4, "ce_packets": 12}]}))
    (roce / "phase.json").write_text(json.dumps({"bottleneck_drops": 0,
                                                 "roce_class_marks": 22,
                                                 "roce_class_drops_all_ports": 0}))
    with (roce / "roce_rates_h2.csv").open("w") as f:
        f.write("sender,qpn,t_s,rate_bps,target_bps,alpha\nh2,256,0.1,5e7,1e8,1\n")
    _messages(tcp / "tcp_messages.csv", "h2", [0.05, 0.05, 0.05])
    out = analyse(tmp_path, spec)
    r = out["transports"]["roce-dcqcn"]
    assert r["blocks_completed"] == 4 and r["blocks_expected"] == 4
    # Target units (25G, D = 250): emulated 250 ms is 1 ms = 1000 us; rates x 250.
    assert spec.scale.dilation == 250
    assert r["fct_p50_ms_emulated"] == pytest.approx(250)
    assert r["fct_p50_ms"] == pytest.approx(1.0) and r["fct_p50_us"] == pytest.approx(1000)
    assert r["goodput_bps_emulated"] == pytest.approx(8 * 4000 / 1.4)  # posts 0 .. done 1.4
    assert r["goodput_bps"] == pytest.approx(250 * 8 * 4000 / 1.4)
    assert r["dilated"] and not out["transports"]["tcp-cubic"]["dilated"]
    assert (r["cnps_received"], r["rate_cuts"], r["cnps_sent"], r["ce_marked_packets"]) == \
        (7, 7, 7, 22)
    assert r["roce_class_drops_all_ports"] == 0
    assert out["transports"]["tcp-cubic"]["blocks_completed"] == 3
    assert not out["all_blocks_completed"]  # tcp-cubic has 3 of 4
    rows = list(csv.DictReader((tmp_path / "transports.csv").open()))
    assert [row["transport"] for row in rows] == ["roce-dcqcn", "tcp-cubic"]
    assert float(rows[0]["fct_p50_us"]) == pytest.approx(1000)
    assert (tmp_path / "roce_incast.png").stat().st_size > 0


def test_report_and_show_state_the_target_fabric(tmp_path, capsys):
    from kvfabric import cli
    from kvfabric.report import render_run_report

    run = tmp_path / "roce_incast" / "20261201-000000-abcd"
    run.mkdir(parents=True)
    summary = {"status": "ok", "error": None, "experiment": "roce_incast",
               "run_id": run.name, "fabric": {"mode": "l3", "topology": "leafspine"},
               "scale": {"dilation": 250.0, "target_rate_bps": 25e9,
                         "emulated_rate_bps": 1e8, "target_fabric_rate_bps": 25e9,
                         "emulated_fabric_rate_bps": 1e8},
               "results": {"transports": {"roce-dcqcn": {"fct_p99_us": 3183.0,
                                                         "fct_p99_ms_emulated": 795.75}}}}
    (run / "summary.json").write_text(json.dumps(summary))
    page = render_run_report(run)
    assert "Target fabric 25 Gbit/s" in page and "250 times slower" in page
    assert "3183 us" in page and "795.8 ms (emulated)" in page
    assert cli.main(["show", str(run)]) == 0
    assert "Target fabric 25 Gbit/s" in capsys.readouterr().out


def test_report_renders_nested_results_as_tables(tmp_path):
    """Each nested mapping of results gets its own table (one column per transport, deeper
    mappings titled by their path), in readable units, never the mapping's repr."""
    from kvfabric.report import render_run_report

    run = tmp_path / "roce_incast" / "20261201-000000-abcd"
    run.mkdir(parents=True)
    summary = {"status": "ok", "experiment": "roce_incast", "run_id": run.name,
               "results": {"all_blocks_completed": True, "transports": {
                   "roce-dcqcn": {"fct_p99_us": 3183.0, "goodput_bps": 2.1e10,
                                  "cnps": {"sent": 4}},
                   "tcp-cubic": {"fct_p99_us": 5120.0, "goodput_bps": 1.9e10}}}}
    (run / "summary.json").write_text(json.dumps(summary))
    page = render_run_report(run)
    assert "{'" not in page
    assert "| result | roce-dcqcn | tcp-cubic |" in page
    assert "| fct_p99_us | 3183 us | 5120 us |" in page
    assert "### transports.roce-dcqcn.cnps" in page and "| sent | 4 |" in page
    assert "| all_blocks_completed | True | True |" in page
