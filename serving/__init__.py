"""A pure, clock-injected model of LLM serving: prefill and decode instances, a router with
prefix caches, disaggregated (KV crosses the fabric) or colocated, and the metrics serving
papers report (TTFT, TPOT, SLO attainment, goodput). See docs/serving.md."""
