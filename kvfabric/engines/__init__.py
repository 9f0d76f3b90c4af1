"""Engines that run a spec: the emulation (kvfabric run) and packet simulators (kvfabric sim).

A simulator engine takes the same resolved spec and workload plan as the emulation, runs the
target fabric at its real rate (no dilation) and writes its run folder in the same results
schema, so `kvfabric compare` can put both side by side.
"""

ENGINES = ("emulation", "hpcc-ns3")
