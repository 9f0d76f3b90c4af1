"""Summary and plot of an ecmp_collision run from its raw CSVs and the controller's events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plotting import new_figure, save_figure
from ..results import read_csv
from .openflow_common import controller_events, rates

#: An uplink counts as congested from the first sample at or above this utilisation.
ONSET_UTIL = 0.85
#: A path is in use once it carries this fraction of its link rate.
IN_USE_UTIL = 0.1


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    flows = read_csv(run_dir / "flows.csv")
    samples = read_csv(run_dir / "uplinks.csv")
    link_bps = spec.fabric["fabric_rate"]
    summary: dict[str, Any] = {"controller": spec.fabric["controller"],
                               "elephants": len(flows)}
    if not flows:
        return summary
    starts = [float(f["start"]) for f in flows]
    ends = [float(f["end"]) for f in flows]
    total = sum(int(f["bytes"]) for f in flows)
    fcts = [float(f["fct_s"]) for f in flows]
    summary.update({
        "aggregate_throughput_bps": 8 * total / (max(ends) - min(starts)),
        "mean_flow_throughput_bps": sum(float(f["throughput_bps"]) for f in flows)
        / len(flows),
        "fct_mean_s": sum(fcts) / len(fcts), "fct_max_s": max(fcts),
        "collided_on": flows[0]["initial_uplink"]
        if len({f["initial_uplink"] for f in flows}) == 1 else None,
    })
    series = rates(samples)
    reroutes = [e for e in controller_events(run_dir, "reroute") if e["t"] >= min(starts)]
    summary["reroutes"] = len(reroutes)
    early = [e for e in controller_events(run_dir, "reroute") if e["t"] < min(starts)]
    summary["reroutes_before_start"] = len(early)
    # A picked connection moved while probing no longer takes the uplink its probe saw: the
    # elephants' collision is then not known, so none is claimed.
    picked = {int(f["sport"]) for f in flows}
    summary["picked_moved_before_start"] = sum(e["flow"][3] in picked for e in early)
    if summary["picked_moved_before_start"]:
        summary["collided_on"] = None
    hot = summary["collided_on"]
    if hot:
        onset = next((r["t"] for r in series if r["iface"] == hot
                      and r["t"] >= min(starts) and r["rate_bps"] >= ONSET_UTIL * link_bps),
                     None)
        summary["congestion_onset_s"] = onset - min(starts) if onset else None
        if onset and reroutes:
            summary["reaction_s"] = reroutes[0]["t"] - onset
            moved = next((r["t"] for r in series if r["iface"] != hot
                          and r["t"] >= reroutes[0]["t"]
                          and r["rate_bps"] >= IN_USE_UTIL * link_bps), None)
            if moved:
                summary["new_path_in_use_s"] = moved - onset
    polls = controller_events(run_dir, "poll_rate")
    if polls:
        achieved = sorted(p["port_stats_replies_hz"] for p in polls)
        summary["stats_poll_requested_hz"] = polls[0]["requested_hz"]
        summary["stats_poll_achieved_hz_median"] = achieved[len(achieved) // 2]
    _plot(run_dir, series, flows, reroutes, min(starts), link_bps)
    return summary


def _plot(run_dir: Path, series, flows, reroutes, t0: float, link_bps: int) -> None:
    fig, (ax_rate, ax_fct) = new_figure(ncols=2, width=11)
    for iface in sorted({r["iface"] for r in series}):
        points = [(r["t"] - t0, r["rate_bps"] / 1e6) for r in series if r["iface"] == iface]
        ax_rate.plot([p[0] for p in points], [p[1] for p in points], label=iface, lw=0.8)
    for event in reroutes:
        ax_rate.axvline(event["t"] - t0, color="red", linestyle=":", lw=1)
    ax_rate.axhline(link_bps / 1e6, color="grey", linestyle="--", lw=0.8)
    ax_rate.set(xlabel="time since elephants started (s)", ylabel="uplink rate (Mbit/s)",
                title="l1 uplinks (red: controller reroutes)")
    ax_rate.legend(loc="lower right")
    ax_fct.bar([f"{f['sender']}:{f['sport']}" for f in flows],
               [float(f["fct_s"]) for f in flows])
    ax_fct.set(ylabel="completion time (s)", title="Elephant completion times")
    save_figure(fig, run_dir / "collision.png")
