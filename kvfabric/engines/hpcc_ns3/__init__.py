"""HPCC's ns-3 RDMA simulator (alibaba-edu/High-Precision-Congestion-Control, `simulation/`).

One job per module: ``plan`` (the spec's transfers, target units), ``mapping`` (spec fields to
the simulator's config keys, and what it cannot express), ``inputs`` (config.txt,
topology.txt, flow.txt, trace.txt), ``simulator`` (find and run ``scratch/third``),
``outputs`` (parse fct.txt, pfc.txt, qlen.txt), ``trace`` (the packet trace through the
simulator's own trace_reader), ``serving`` (serving_disagg: the serving model's transfers and
its turns with the simulator), ``importer`` (the run folder in kvfabric's
results schema). Build the simulator from its own README; kvfabric only drives it.
"""
