"""Summary and plot of a tenant_isolation run from reachability.csv and throughput.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plotting import new_figure, save_figure
from ..results import read_csv

PROBES = ("icmp", "tcp", "udp", "roce_udp_4791")


def tenant_share_bps(spec, host: str) -> float:
    """A tenant's share of host's leaf uplinks: their capacity split equally among tenants
    (what the meters enforce when fabric.tenant_meters is on)."""
    topo = spec.make_topology()
    leaf = topo.neighbors(host)[0]
    uplinks = [n for n in topo.neighbors(leaf) if topo.role(n) != "host"]
    capacity = sum(topo.linkInfo(leaf, n)["rate_bps"] for n in uplinks)
    return capacity / max(1, len(spec.tenants))


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    reach = read_csv(run_dir / "reachability.csv")
    summary: dict[str, Any] = {"tenants": {t: len(m) for t, m in spec.tenants.items()},
                               "tenant_meters": spec.fabric["tenant_meters"]}
    if reach:
        cross = [r for r in reach if r["same_tenant"] != "True"]
        inside = [r for r in reach if r["same_tenant"] == "True"]
        summary.update({
            "pairs_cross_tenant": len(cross),
            "cross_tenant_probes_answered": sum(r[p] == "True" for r in cross for p in PROBES),
            "cross_tenant_frames_delivered": sum(int(r["frames_at_dst"]) for r in cross),
            "pairs_in_tenant": len(inside),
            "in_tenant_probes_failed": sum(r[p] != "True" for r in inside for p in PROBES),
        })
    rows = read_csv(run_dir / "throughput.csv")
    if rows:
        b = {r["phase"]: float(r["bps"]) for r in rows if r["flow"].startswith("B ")}
        a = sum(float(r["bps"]) for r in rows if r["flow"].startswith("A "))
        share = tenant_share_bps(spec, spec.workload["victim"])
        summary.update({"b_alone_bps": b.get("alone"), "b_during_incast_bps": b.get("incast"),
                        "a_incast_total_bps": a, "tenant_share_bps": share})
        if b.get("incast") is not None and b.get("alone"):
            summary["b_kept_of_alone"] = b["incast"] / b["alone"]
            summary["b_kept_of_share"] = b["incast"] / min(share, b["alone"])
        _plot(run_dir, rows, share)
    return summary


def _plot(run_dir: Path, rows, share: float) -> None:
    fig, ax = new_figure(width=8)
    labels = [f"{r['phase']}\n{r['flow']}" for r in rows]
    ax.bar(labels, [float(r["bps"]) / 1e6 for r in rows],
           color=["tab:orange" if r["flow"].startswith("B ") else "tab:blue" for r in rows])
    ax.axhline(share / 1e6, color="grey", linestyle=":", label="tenant share")
    ax.set(ylabel="throughput (Mbit/s)", title="Tenant B alone and during A's incast")
    ax.legend()
    ax.tick_params(axis="x", labelsize=7)
    save_figure(fig, run_dir / "tenant_isolation.png")
