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
    assert r["fct_p50_ms"] == pytest.approx(250)
    assert r["goodput_bps"] == pytest.approx(8 * 4000 / 1.4)  # first post 0, last done 1.4
    assert (r["cnps_received"], r["rate_cuts"], r["cnps_sent"], r["ce_marked_packets"]) == \
        (7, 7, 7, 22)
    assert r["roce_class_drops_all_ports"] == 0
    assert out["transports"]["tcp-cubic"]["blocks_completed"] == 3
    assert not out["all_blocks_completed"]  # tcp-cubic has 3 of 4
    rows = list(csv.DictReader((tmp_path / "transports.csv").open()))
    assert [row["transport"] for row in rows] == ["roce-dcqcn", "tcp-cubic"]
    assert (tmp_path / "roce_incast.png").stat().st_size > 0
