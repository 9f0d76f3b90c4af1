"""The fidelity monitor judges a run from its folder: a host that kept up is "ok"; one that
could not carry a link's rate, pace its senders, sweep the queues in time or that ran out of
CPU is "degraded", with the reason and the figure."""

from __future__ import annotations

import json

from kvfabric import results
from kvfabric.fidelity import CpuSampler, assess
from kvfabric.spec import load_spec

SPEC = load_spec("roce_incast")  # 25G target, D = 250, 100 Mbit/s emulated


def _folder(tmp_path, *, busy=0.5, share=1.0, sweep_p99_s=0.003, lag_s=0.0002):
    run = tmp_path / "run"
    (run / "queues").mkdir(parents=True)
    (run / "roce-dcqcn").mkdir()
    results.write_csv(run / "fidelity_cpu.csv",
                      [{"t_s": 0.2 * k, "busy": busy, "cpus": 2} for k in range(10)])
    results.write_csv(run / "links.csv", [{"node": "l1", "ifname": "l1-eth1", "peer": "h1",
                                           "rate_bps": 100_000_000}])
    rows, sent = [], 0
    for k in range(101):  # 1 s backlogged at 100 Mbit/s x share
        rows.append({"t_s": k * 0.01, "node": "l1", "port": "l1-eth1", "peer": "h1",
                     "class": "lossless", "backlog_bytes": 200_000, "packets_queued": 190,
                     "drops": 0, "sent_bytes": sent, "paused": 0})
        sent += int(100e6 / 8 * 0.01 * share)
    results.write_csv(run / "queues" / "queue_samples.csv", rows)
    (run / "queues" / "agent.json").write_text(json.dumps(
        {"sweep_period_p99_s": sweep_p99_s, "sweep_period_max_s": 2 * sweep_p99_s}))
    (run / "roce-dcqcn" / "roce_sender_h2.json").write_text(json.dumps({"qps": [
        {"pacing_lag_p99_s": lag_s, "pacing_lag_max_s": 2 * lag_s}]}))
    return run


def test_a_host_that_kept_up_is_ok_and_reports_target_figures(tmp_path):
    out = assess(_folder(tmp_path), SPEC)
    assert out["status"] == "ok" and out["reasons"] == []
    figures = out["figures"]
    assert figures["busy_links"][0]["achieved_share"] == 1.0
    # The agent's 3 ms sweep (wall) is 12 us of target time at D = 250.
    assert figures["pfc_agent_reaction_p99_target_us"] == 12.0
    assert figures["pfc_headroom_reaction_target_us"] == 200.0
    assert figures["pacing_lag_p99_target_us_worst"] == 0.8


def test_each_broken_invariant_degrades_the_run_with_its_reason(tmp_path):
    out = assess(_folder(tmp_path, busy=0.99, share=0.6, sweep_p99_s=0.08, lag_s=0.005),
                 SPEC)
    assert out["status"] == "degraded"
    text = " | ".join(out["reasons"])
    assert "CPU saturated" in text
    assert "l1:l1-eth1 lossless carried 60%" in text
    assert "queue agent sweep p99 80.0 ms" in text
    assert "paced frames 5.00 ms late" in text


def test_cpu_sampler_writes_busy_shares(tmp_path):
    with CpuSampler(tmp_path, period_s=0.05):
        sum(i * i for i in range(300_000))
    rows = results.read_csv(tmp_path / "fidelity_cpu.csv")
    assert rows and all(0.0 <= float(r["busy"]) <= 1.0 for r in rows if r["busy"])
